"""Hostile input to the model registry and its plugin API: names that climb out of the artifact root, URL
quoting, a second registry on the same artifact root, absurd numbers, bad configuration, unauthenticated
docs. Each error is a registry error with a hint; nothing is written where it should not be."""

import logging
import multiprocessing as mp
import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_amml.registry import (
    ArtifactError,
    HdfsArtifactStore,
    InvalidValueError,
    LocalArtifactStore,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
    artifact_store_for,
)
from airflow_amml.registry.names import NAME_PATTERN
from tests.registry.test_registry import CorruptingStore, age_writes, killed_registration

YAML = "name: ett\nversion: '0.1'\n"


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(1024))
    return path


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", LocalArtifactStore(tmp_path / "artifacts"))
    registry.register_definition("ett", "0.1", YAML)
    return registry


def files_under(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def count(registry, table):
    with registry.engine.connect() as conn:
        return conn.execute(sa.text(f"select count(*) from {table}")).scalar()


# ---- names and references -----------------------------------------------------------------------------

BAD_NAMES = ["../../x", "/abs", "a/b", "..", ".hidden", "-x", "a..b", "ett@prod", "my model", "", "x" * 101, "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_model_name_is_one_harmless_folder_name(registry, model_file, tmp_path, name):
    before = files_under(tmp_path)
    with pytest.raises(InvalidValueError, match="pattern") as info:
        registry.register_version(name, "ett:0.1", model_file)
    assert info.value.hint, "the error suggests a fix"
    assert files_under(tmp_path) == before, "nothing was written anywhere"
    assert count(registry, "amml_model_versions") == 0 and count(registry, "amml_artifact_writes") == 0


def test_cli_register_with_a_climbing_name_writes_nothing(tmp_path, model_file, monkeypatch, capsys):
    from airflow_amml.cli import main

    monkeypatch.setenv("AMML_ARTIFACTS", str(tmp_path / "deep" / "artifacts"))
    ModelRegistry.from_config().register_definition("ett", "0.1", YAML)
    before = files_under(tmp_path)
    for name in ("../../x", str(tmp_path / "abs")):
        assert main(["model", "register", str(model_file), "--definition", "ett:0.1", "--name", name]) == 1
    err = capsys.readouterr().err
    assert NAME_PATTERN in err and "hint: use `x` instead" in err and "Traceback" not in err
    assert files_under(tmp_path) == [p for p in before if p.exists()] == before


def test_the_shipped_names_and_references_still_work(registry, model_file):
    registry.register_definition("ett-delta", "0.1", "name: ett-delta\n")
    registry.register_definition("ett_v2.b", "2024-07+1", "name: ett_v2.b\n")
    entry = registry.register_version("ett-delta", "ett-delta:0.1", model_file)
    registry.set_alias("ett-delta", "champion", entry.version)
    for ref in ("ett-delta", "ett-delta/1", "ett-delta@champion"):
        assert registry.resolve(ref).version == 1
    assert registry.get_definition("ett_v2.b:2024-07+1") == "name: ett_v2.b\n"


@pytest.mark.parametrize("alias", ["", "x" * 5000, "a/b", "a@b", "..", "with space"])
def test_aliases_follow_the_name_pattern(registry, model_file, alias):
    registry.register_version("ett", "ett:0.1", model_file)
    with pytest.raises(InvalidValueError, match=r"alias .* is not valid") as info:
        registry.set_alias("ett", alias, 1)
    assert len(str(info.value)) < 600, "a 5,000-character alias is not echoed whole"
    assert count(registry, "amml_model_aliases") == 0


@pytest.mark.parametrize(
    "ref",
    ["ett/" + "9" * 5000, "ett/99999999999", "ett/2147483648", "ett/0", "ett/²", "ett/-1", "../x", "ett@", "@x", ""],
)
def test_malformed_references_are_registry_errors(registry, ref):
    with pytest.raises(InvalidValueError) as info:
        registry.resolve(ref)
    assert info.value.hint and "ett@champion" in info.value.hint


def test_the_largest_version_number_is_simply_not_found(registry):
    with pytest.raises(ModelNotFoundError):
        registry.resolve("ett/2147483647")


@pytest.mark.parametrize(
    ("name", "version"), [("../x", "0.1"), ("ett", "0.1/../.."), ("ett", ""), ("ett:0", "1"), ("ett", "x" * 65)]
)
def test_definition_names_and_versions_are_checked(registry, name, version):
    with pytest.raises(InvalidValueError, match="pattern"):
        registry.register_definition(name, version, YAML)
    assert count(registry, "amml_model_definitions") == 1


def test_definition_references_need_name_and_version(registry):
    with pytest.raises(InvalidValueError, match="expected NAME:VERSION"):
        registry.get_definition("ett")
    with pytest.raises(InvalidValueError, match="pattern"):
        registry.register_version("ett", "../x:0.1", Path("unused"))


def test_listing_and_lineage_lookups_check_the_name(registry):
    with pytest.raises(InvalidValueError):
        registry.list_versions("../x")
    with pytest.raises(InvalidValueError):
        registry.find_by_lineage("ett", "dag", "r" * 300, "task")


# ---- the artifact stores refuse what leaves their root ------------------------------------------------


def test_the_local_store_refuses_keys_and_uris_outside_its_root(tmp_path, model_file):
    store = LocalArtifactStore(tmp_path / "root")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    victim = tmp_path / "victim" / "model.keras"
    victim.parent.mkdir()
    victim.write_bytes(b"not yours")
    for key in ("../outside", "/abs/x", "a/../../b", "link/x", "", "a//b"):
        with pytest.raises(ArtifactError, match="artifact"):
            store.put([model_file], key)
    for uri in (victim.as_uri(), (tmp_path / "root" / ".." / "victim" / "model.keras").as_uri()):
        with pytest.raises(ArtifactError, match="outside the artifact root"):
            store.delete(uri)
        with pytest.raises(ArtifactError, match="outside the artifact root"):
            store.get(uri, tmp_path / "copy")
    with pytest.raises(ArtifactError, match="not a local file"):
        store.delete("file://otherhost/etc/x")
    assert victim.read_bytes() == b"not yours" and not (tmp_path / "outside").exists()


class RecordingClient:
    """Stands in for the hdfs client: refusals must happen before any call reaches the namenode."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args))


def test_the_hdfs_store_refuses_keys_and_uris_outside_its_root(model_file, tmp_path):
    client = RecordingClient()
    store = HdfsArtifactStore(client, "/amml/models")
    for key in ("../x", "/abs", "a/../../b"):
        with pytest.raises(ArtifactError):
            store.put([model_file], key)
    for uri in ("hdfs:///etc/x", "hdfs:///amml/models/../other/x", "hdfs:///amml/modelsX/a/b"):
        with pytest.raises(ArtifactError, match="outside the artifact root"):
            store.delete(uri)
        with pytest.raises(ArtifactError, match="outside the artifact root"):
            store.get(uri, tmp_path / "x")
    assert client.calls == []
    with pytest.raises(ArtifactError, match="not an absolute path"):
        HdfsArtifactStore(client, "relative/root")


@pytest.mark.parametrize("name", [".model.keras", "a\nb.keras"])
def test_stored_file_names_are_plain(registry, tmp_path, name):
    odd = tmp_path / name
    odd.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="cannot store a file named"):
        registry.register_version("ett", "ett:0.1", odd)
    assert files_under(tmp_path / "artifacts") == [] and count(registry, "amml_artifact_writes") == 0


# ---- quoting: spaces and `@` in paths -----------------------------------------------------------------


def test_a_space_and_an_at_sign_in_amml_home_work(tmp_path, monkeypatch, model_file):
    home = tmp_path / "my home@work"
    monkeypatch.setenv("AMML_HOME", str(home))
    registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", YAML)
    plot = tmp_path / "loss plot.png"
    plot.write_bytes(b"png")
    entry = registry.register_version("ett", "ett:0.1", model_file, plots={"loss": plot})
    _, local = registry.download("ett/1", tmp_path / "dl")
    assert local.read_bytes() == model_file.read_bytes() and local.name == "model.keras"
    assert entry.artifact_uri.startswith(home.as_uri())
    age_writes(registry, 10**6)
    assert registry.gc(grace_seconds=0) == [] and len(files_under(home / "artifacts")) == 2


def test_a_failed_registration_under_a_quoted_path_leaves_nothing(tmp_path, model_file):
    root = tmp_path / "with space" / "artifacts"
    root.parent.mkdir()
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'with space' / 'r.db'}", CorruptingStore(root))
    registry.register_definition("ett", "0.1", YAML)
    with pytest.raises(ArtifactError):
        registry.register_version("ett", "ett:0.1", model_file)
    assert files_under(root) == [], "no orphan file"
    assert count(registry, "amml_model_versions") == 0 and count(registry, "amml_artifact_writes") == 0


# ---- gc: only what it did, only what it owns ----------------------------------------------------------


class DeleteDoesNothing(LocalArtifactStore):
    def delete_folder(self, key):
        pass


def test_gc_reports_only_what_it_removed(tmp_path, model_file):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}", LocalArtifactStore(tmp_path / "a"))
    registry.register_definition("ett", "0.1", YAML)
    orphan = killed_registration(registry, model_file)
    age_writes(registry, 7200)
    stuck = ModelRegistry(registry.db_url, DeleteDoesNothing(tmp_path / "a"))
    assert stuck.gc(grace_seconds=60) == [], "a folder that is still there is not reported removed"
    assert files_under(tmp_path / "a") == [Path(orphan.removeprefix("file://"))]
    assert registry.gc(grace_seconds=60) == [orphan] and files_under(tmp_path / "a") == []


def test_gc_never_touches_what_another_registry_wrote_into_the_same_root(tmp_path, model_file):
    root = tmp_path / "shared"
    mine = ModelRegistry(f"sqlite:///{tmp_path / 'mine.db'}", LocalArtifactStore(root))
    theirs = ModelRegistry(f"sqlite:///{tmp_path / 'theirs.db'}", LocalArtifactStore(root))
    for registry in (mine, theirs):
        registry.register_definition("ett", "0.1", YAML)
    my_version = mine.register_version("ett", "ett:0.1", model_file)
    their_version = theirs.register_version("ett", "ett:0.1", model_file)
    their_orphan = killed_registration(theirs, model_file)
    age_writes(theirs, 7200)
    assert mine.gc(grace_seconds=0) == []
    assert len(files_under(root)) == 3
    assert theirs.gc(grace_seconds=60) == [their_orphan]
    _, _ = mine.download(my_version.ref, tmp_path / "a"), theirs.download(their_version.ref, tmp_path / "b")


@pytest.mark.parametrize("grace", [float("nan"), -1, "1h", True])
def test_gc_grace_must_be_a_number_of_seconds(registry, grace):
    with pytest.raises(InvalidValueError, match="grace period"):
        registry.gc(grace_seconds=grace)


# ---- tags, metrics, lineage, files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tags": {"../k": "v"}}, "tag key"),
        ({"tags": {"k": "v" * 5000}}, "at most 1000"),
        ({"tags": {"k": "a\x00b"}}, "control character"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "at most 50"),
        ({"metrics": {"loss": float("nan")}}, "only finite numbers"),
        ({"metrics": {"loss": float("inf")}}, "only finite numbers"),
        ({"metrics": {"n": 10**5000}}, "too large"),
        ({"metrics": {"n": {"nested": 1}}}, "must be a number"),
        ({"metrics": {"bad name": 1}}, "metric name"),
        ({"plots": {"../loss": Path("x.png")}}, "plot name"),
        ({"scaler": {"x": "y" * (2 << 20)}}, "at most"),
        ({"scaler": {"x": object()}}, None),  # stored as its string: no error
    ],
)
def test_version_metadata_is_checked_before_anything_is_written(registry, model_file, tmp_path, kwargs, match):
    if match is None:
        registry.register_version("ett", "ett:0.1", model_file, **kwargs)
        return
    with pytest.raises(InvalidValueError, match=match):
        registry.register_version("ett", "ett:0.1", model_file, **kwargs)
    assert files_under(tmp_path / "artifacts") == [] and count(registry, "amml_model_versions") == 0


@pytest.mark.parametrize("field", ["dag_id", "run_id", "task_id", "data_interval_start", "source_hash"])
def test_lineage_fits_its_columns(registry, model_file, field):
    from airflow_amml.registry import Lineage

    with pytest.raises(InvalidValueError, match=f"lineage {field}"):
        registry.register_version("ett", "ett:0.1", model_file, lineage=Lineage(**{field: "x" * 251}))
    with pytest.raises(InvalidValueError, match="control character"):
        registry.register_version("ett", "ett:0.1", model_file, lineage=Lineage(**{field: "a\nb"}))


def test_set_tag_checks_key_value_and_version(registry, model_file):
    registry.register_version("ett", "ett:0.1", model_file)
    registry.set_tag("ett", 1, "owner", "team-a")
    with pytest.raises(InvalidValueError):
        registry.set_tag("ett", 1, "", "x")
    with pytest.raises(InvalidValueError):
        registry.set_tag("ett", 10**40, "owner", "x")
    assert registry.resolve("ett/1").tags == {"owner": "team-a"}


def test_a_missing_model_file_is_a_registry_error(registry, tmp_path):
    for path in (tmp_path / "nope.keras", tmp_path):
        with pytest.raises(InvalidValueError, match="does not exist or is not a file"):
            registry.register_version("ett", "ett:0.1", path)
    assert count(registry, "amml_artifact_writes") == 0


# ---- configuration ------------------------------------------------------------------------------------


def test_a_relative_artifact_root_is_refused_with_a_hint(tmp_path, monkeypatch, capsys):
    from airflow_amml.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMML_ARTIFACTS", "rel/artifacts")
    with pytest.raises(ArtifactError, match="relative path") as info:
        ModelRegistry.from_config()
    assert str(tmp_path / "rel" / "artifacts") in info.value.hint
    assert main(["model", "list"]) == 1
    assert "relative path" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "value", "match"),
    [
        ("AMML_HOME", "relative/home", "AMML_HOME 'relative/home' is a relative path"),
        ("AMML_REGISTRY_URL", "sqlite:///relative.db", "relative path"),
        ("AMML_REGISTRY_URL", "not a url", "cannot use the registry database URL"),
        ("AMML_REGISTRY_URL", "nosuchdb+driver://h/db", "cannot use the registry database URL"),
        ("AMML_ARTIFACTS", "webhdfs://namenode:notaport/x", "not a valid URL"),
        ("AMML_ARTIFACTS", "webhdfs:///no/namenode", "names no namenode"),
        ("AMML_ARTIFACTS", "file://relative/x", "names a host"),
        ("AMML_ARTIFACTS", "s3://bucket/x", "unknown artifact location"),
    ],
)
def test_bad_configuration_is_a_registry_error(tmp_path, monkeypatch, env, value, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(env, value)
    with pytest.raises(RegistryError, match=match):
        ModelRegistry.from_config()


def test_a_password_in_an_unreachable_url_is_not_shown(tmp_path):
    with pytest.raises(RegistryError) as info:
        ModelRegistry("sqlite:////nonexistent-dir/x/r.db", LocalArtifactStore(tmp_path))
    assert "cannot reach the registry database" in str(info.value)
    with pytest.raises(RegistryError) as info:
        ModelRegistry("postgresql+psycopg://amml:s3cret@127.0.0.1:1/db", LocalArtifactStore(tmp_path))
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_artifact_store_for_accepts_quoted_file_urls(tmp_path):
    store = artifact_store_for((tmp_path / "a b").as_uri())
    assert store.root == tmp_path / "a b"


# ---- migrations are quiet -----------------------------------------------------------------------------


def test_migrations_do_not_log_alembic_info(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        ModelRegistry(f"sqlite:///{tmp_path / 'quiet.db'}", LocalArtifactStore(tmp_path / "a"))
    assert [r for r in caplog.records if r.name.startswith("alembic")] == []


def test_a_user_who_asks_for_alembic_logs_gets_them(tmp_path, caplog):
    logging.getLogger("alembic").setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            ModelRegistry(f"sqlite:///{tmp_path / 'loud.db'}", LocalArtifactStore(tmp_path / "a"))
    finally:
        logging.getLogger("alembic").setLevel(logging.NOTSET)
    assert any(r.name.startswith("alembic") for r in caplog.records)


# ---- concurrency with the new write records -----------------------------------------------------------


def _register(db_url, root, model_file, queue):
    registry = ModelRegistry(db_url, LocalArtifactStore(root))
    queue.put(registry.register_version("ett", "ett:0.1", Path(model_file)).version)


def test_parallel_registrations_leave_no_write_records(registry, tmp_path, model_file):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    args = (registry.db_url, tmp_path / "artifacts", model_file, queue)
    procs = [ctx.Process(target=_register, args=args) for _ in range(6)]
    for p in procs:
        p.start()
    versions = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert versions == list(range(1, 7))
    assert count(registry, "amml_artifact_writes") == 0 and len(files_under(tmp_path / "artifacts")) == 6


# ---- the plugin's API ---------------------------------------------------------------------------------


@pytest.fixture
def app(model_file):
    from airflow_amml.plugin import create_app

    registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", YAML)
    registry.register_version("ett", "ett:0.1", model_file, metrics={"mae": 0.5})
    return create_app()


def as_viewer(app):
    """The api-server checks the caller's JWT: stand in for a user allowed to view plugins."""
    from fastapi.testclient import TestClient

    [authorized] = app.router.dependencies
    app.dependency_overrides[authorized.dependency] = lambda: None
    return TestClient(app)


def test_the_openapi_schema_and_the_docs_need_a_login_and_load_nothing_from_outside(app):
    from fastapi.testclient import TestClient

    anonymous = TestClient(app)
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get("/models").status_code == 401
    assert anonymous.get("/docs").status_code == 401
    viewer = as_viewer(app)  # (this lets every client of `app` in)
    schema = viewer.get("/openapi.json")
    assert schema.status_code == 200 and "/models/{ref}" in schema.json()["paths"]
    docs = viewer.get("/docs")  # our own page, rendered from the schema: FastAPI's Swagger UI loads from a CDN
    assert docs.status_code == 200 and "/models/{ref}" in docs.text
    # its one script is the pages' own, from this app (the CSP allows no other)
    [script] = re.findall(r'<script src="([^"]*)"', docs.text)
    assert script.startswith("/") and not script.startswith("//") and script.endswith("/ui/static/amml.js")
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert "cdn" not in docs.text.lower() and viewer.get("/redoc").status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/models/ett/" + "9" * 5000, 400, "whole numbers from 1 to 2147483647"),
        ("/models/ett/99999999999", 400, "whole numbers"),
        ("/models/ett@" + "x" * 300, 400, "alias"),
        ("/models/my%20model", 400, "hint: use `my_model` instead"),
        ("/models/ett/7", 404, "no version 'ett/7'"),
        ("/models/nope", 404, "no model named 'nope'"),
    ],
)
def test_bad_references_are_readable_json_errors(app, path, status, text):
    response = as_viewer(app).get(path)
    assert response.status_code == status and text in response.json()["detail"]


def test_a_misconfigured_registry_is_a_503_with_the_reason(app, monkeypatch):
    monkeypatch.setenv("AMML_ARTIFACTS", "relative/artifacts")
    response = as_viewer(app).get("/models")
    assert response.status_code == 503 and "relative path" in response.json()["detail"]


def test_non_finite_metrics_of_old_rows_do_not_break_the_api(app):
    registry = ModelRegistry.from_config()
    with registry.engine.begin() as conn:  # a row written before metrics were checked
        conn.execute(sa.text("""update amml_model_versions set metrics = '{"loss": NaN}'"""))
    response = as_viewer(app).get("/models/ett")
    assert response.status_code == 200 and response.json()["metrics"] == {"loss": None}
