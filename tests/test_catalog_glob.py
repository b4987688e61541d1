"""The catalog's built-in NAB series (`nab/<category>/<name>`) and `matching_ids`, the one function that resolves
a fan-out's `catalog("GLOB")` (for the items task and `amml run`)."""

from pathlib import Path

import pandas as pd
import pytest

from airflow_amml.components.catalog import iter_source, matching_ids
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError

NAB = Path(__file__).resolve().parents[1] / "airflow_amml" / "data" / "nab"
SHIPPED = sorted(f"nab/{p.parent.name}/{p.stem}" for p in NAB.glob("*/*.csv"))


def test_nab_star_is_every_shipped_series_and_a_category_is_its_own():
    config = RunConfig()
    assert matching_ids(config, "nab/*") == SHIPPED and len(SHIPPED) == 28
    known_cause = matching_ids(config, "nab/realKnownCause/*")
    assert known_cause == [i for i in SHIPPED if i.startswith("nab/realKnownCause/")] and len(known_cause) == 7
    assert "nab/realKnownCause/nyc_taxi" in known_cause
    assert matching_ids(config, "nab/*/art_daily_*") == [i for i in SHIPPED if "/art_daily_" in i]
    assert matching_ids(config, "NAB/*") == [], "ids are matched case-sensitively, as they are looked up"
    assert matching_ids(config, "nothing*") == []


def test_a_shipped_series_reads_with_its_time_column():
    frames = list(iter_source("nab/realKnownCause/nyc_taxi", config=RunConfig(), start="2014-07-01", end="2014-07-02"))
    frame = pd.concat(frames)
    expected = pd.read_csv(NAB / "realKnownCause" / "nyc_taxi.csv")
    assert list(frame.columns) == ["timestamp", "value"]
    assert len(frame) == 48 == int(expected["timestamp"].str.startswith("2014-07-01").sum())


def test_the_catalog_files_ids_are_matched_and_win_over_a_shipped_series(tmp_path):
    mine = tmp_path / "taxi.csv"
    pd.DataFrame({"ts": ["2020-01-01 00:00:00"], "value": [1.0]}).to_csv(mine, index=False)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        f"plant/pump_1: {{path: {mine}, time_column: ts}}\n"
        f"plant/pump_2: {{path: {mine}, time_column: ts}}\n"
        f"nab/realKnownCause/nyc_taxi: {{path: {mine}, time_column: ts}}\n"
    )
    config = RunConfig(catalog_file=catalog)
    assert matching_ids(config, "plant/*") == ["plant/pump_1", "plant/pump_2"]
    assert matching_ids(config, "*pump_2") == ["plant/pump_2"]
    assert len(matching_ids(config, "nab/*")) == 28, "the same id, once"
    [frame] = iter_source("nab/realKnownCause/nyc_taxi", config=config)
    assert list(frame.columns) == ["ts", "value"] and len(frame) == 1, "the catalog file's entry, not the shipped one"


@pytest.mark.parametrize("pattern", ["", "x" * 201, None, ["nab/*"]], ids=["empty", "long", "none", "list"])
def test_a_pattern_that_is_no_short_glob_is_refused(pattern):
    with pytest.raises(PipelineError, match=r"catalog\(") as raised:
        matching_ids(RunConfig(), pattern)
    assert raised.value.hint


def test_catalog_ids_are_texts_and_a_broken_catalog_file_is_one_readable_error(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("42: {path: /data/a.csv, time_column: ts}\n2024-01-01: {path: /data/b.csv, time_column: ts}\n")
    config = RunConfig(catalog_file=catalog)
    assert {"42", "2024-01-01"} <= set(matching_ids(config, "*"))
    catalog.write_text("sensors: [unclosed\n")
    with pytest.raises(PipelineError, match="is not valid YAML") as info:
        matching_ids(config, "*")
    assert info.value.hint
    catalog.write_text("- just\n- a list\n")
    with pytest.raises(PipelineError, match="must map source ids to entries"):
        matching_ids(config, "*")
