"""The pipeline page (`operators/pipeline_page.py`): a real Graphviz draws the graph; the SVG is parsed as XML.
The router is mounted on a FastAPI app of its own here (the plugin mounts it under /amml/ui behind Airflow's
login: tests/airflow/test_plugin.py and the browser tests), with the dags folder given to it."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from operators import pipeline_page

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = (
    "dag hostile { params = {limit: 3} }\n"
    'normalsource col="v" | alert cond=v > params.limit, message="</text><script>alert(1)</script> & \\\\N \\"x\\""\n'
)
HOSTILE_MESSAGE = '"</text><script>alert(1)</script> & \\\\N \\"x\\""'  # as AMML writes it back (a string literal)


@pytest.fixture
def client(tmp_path):
    for path in (ROOT / "dags").glob("*.amml"):
        shutil.copy(path, tmp_path)
    (tmp_path / "hostile.amml").write_text(HOSTILE)
    (tmp_path / "broken.amml").write_text("source id='ett' | fitler | print\n")
    app = FastAPI()
    app.include_router(pipeline_page.router, prefix="/amml/ui")
    app.dependency_overrides[pipeline_page.dags_folder] = lambda: str(tmp_path)
    return TestClient(app)


def graph_of(page: str) -> ET.Element:
    start, end = page.index('<svg id="pipeline-graph"'), page.index("</svg>") + len("</svg>")
    return ET.fromstring(page[start:end])  # well-formed XML, or this raises


def node_texts(svg: ET.Element) -> dict[str, list[str]]:
    """{node id: the lines of its label} of Graphviz's SVG (one <g class="node" id=...> per component)."""
    return {
        g.get("id"): [t.text for t in g.iter(f"{SVG}text")] for g in svg.iter(f"{SVG}g") if g.get("class") == "node"
    }


def test_the_page_draws_each_pipeline_with_its_components_and_parameters(client):
    response = client.get("/amml/ui/dags/ett_watch/pipeline")
    assert response.status_code == 200
    page = response.text
    assert "<h1>Pipeline of ett_watch</h1>" in page or ">Pipeline of ett_watch</h1>" in page
    nodes = node_texts(graph_of(page))
    # hot_oil (4 components) and forecast (7): one box each, its name over its parameters as the file sets them
    assert len(nodes) == 11
    labels = sorted(lines[0] for lines in nodes.values())
    assert labels.count("source") == 2 and labels.count("alert") == 2
    forecast_lstm = next(lines for lines in nodes.values() if lines[0] == "lstm")
    assert forecast_lstm == ["lstm", "model=params.model"]
    hot = next(lines for lines in nodes.values() if 'level="critical"' in lines)
    assert "cond=OT > 40 and HUFL > 10" in hot
    clusters = [
        t.text for g in graph_of(page).iter(f"{SVG}g") if g.get("class") == "cluster" for t in g.iter(f"{SVG}text")
    ]
    assert sorted(clusters) == ["pipeline forecast", "pipeline hot_oil"]
    source = (ROOT / "dags" / "ett_watch.amml").read_text()
    assert '<pre id="amml-source">' in page and "readings | snapshot size=48, on=&quot;alert&quot;" in page
    assert source.splitlines()[0].replace("'", "&#x27;") in page
    assert 'id="params"' in page and "the catalog data set to watch" in page


def test_labels_and_source_are_escaped_for_a_hostile_value(client):
    page = client.get("/amml/ui/dags/hostile/pipeline").text
    assert "<script>" not in page, "nothing from the file becomes markup"
    nodes = node_texts(graph_of(page))
    alert = next(lines for lines in nodes.values() if lines[0] == "alert")
    # Graphviz wrote the text itself (XML-escaped), not its escapes (`\N` would be the node's name)
    assert alert == ["alert", f"message={HOSTILE_MESSAGE}", "cond=v > params.limit"]
    assert "&lt;/text&gt;&lt;script&gt;" in page.split('<pre id="amml-source">')[1]


def test_an_unknown_dag_or_a_path_is_a_404_page_with_a_message(client):
    for dag_id in ("nope", "..%2F..%2Fetc%2Fpasswd", "broken"):
        response = client.get(f"/amml/ui/dags/{dag_id}/pipeline")
        assert response.status_code == 404
        if dag_id != "..%2F..%2Fetc%2Fpasswd":  # the router does not even match a path with slashes
            assert '<div id="message" role="alert">No AMML file in the dags folder makes the DAG' in response.text


def test_the_svg_is_drawn_once_per_graph_text(client, monkeypatch):
    pipeline_page._drawn.cache_clear()
    calls = []
    real = pipeline_page.subprocess.run
    monkeypatch.setattr(pipeline_page.subprocess, "run", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        assert client.get("/amml/ui/dags/ett_train/pipeline").status_code == 200
    assert len(calls) == 1


def test_a_graph_too_large_is_not_handed_to_graphviz(client, tmp_path):
    with pytest.raises(pipeline_page.GraphUnavailable, match="more than"):
        pipeline_page.svg("digraph g {" + "a -> b;" * 40_000 + "}")
