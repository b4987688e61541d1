"""The model registry on the embedded defaults (SQLite + local folder). The same behaviour on PostgreSQL +
HDFS is tested in test_registry_services.py against real servers."""

import multiprocessing as mp
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from airflow_amml.registry import (
    ArtifactError,
    ChecksumMismatchError,
    LocalArtifactStore,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
)
from airflow_amml.registry.schema import ArtifactWrite

YAML = "name: ett\nversion: '0.1'\n"


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", LocalArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(4096))
    return path


def rows(registry, table):
    with registry.engine.connect() as conn:
        return conn.execute(sa.text(f"select count(*) from {table}")).scalar()


def test_versions_count_up_and_resolve_by_latest_alias_and_number(registry, model_file):
    registry.register_definition("ett", "0.1", YAML)
    first = registry.register_version("ett", "ett:0.1", model_file, scaler={"OT": [0, 1]}, metrics={"mae": 0.1})
    second = registry.register_version("ett", "ett:0.1", model_file)
    assert (first.version, second.version) == (1, 2)
    assert registry.resolve("ett").version == 2
    registry.set_alias("ett", "champion", 1)
    assert registry.resolve("ett@champion").version == 1
    assert registry.resolve("ett/1").scaler == {"OT": [0, 1]} and registry.resolve("ett/1").metrics == {"mae": 0.1}
    registry.set_alias("ett", "champion", 2)  # aliases move
    assert registry.resolve("ett@champion").version == 2 and registry.resolve("ett/2").aliases == ("champion",)


def test_unknown_names_aliases_and_versions_list_what_exists(registry, model_file):
    registry.register_definition("ett", "0.1", YAML)
    registry.register_version("ett", "ett:0.1", model_file)
    registry.set_alias("ett", "champion", 1)
    with pytest.raises(ModelNotFoundError, match=r"no model named 'etx'; registered models: ett") as info:
        registry.resolve("etx")
    assert "did you mean `ett`?" in str(info.value)
    with pytest.raises(ModelNotFoundError, match=r"ett has versions 1 and aliases @champion"):
        registry.resolve("ett@best")
    with pytest.raises(ModelNotFoundError, match=r"no version 'ett/7'"):
        registry.resolve("ett/7")
    with pytest.raises(ModelNotFoundError, match=r"no model definition 'ett:0.2'; registered: ett:0.1"):
        registry.register_version("ett", "ett:0.2", model_file)


def test_definitions_are_immutable(registry):
    assert registry.register_definition("ett", "0.1", YAML) == "ett:0.1"
    assert registry.register_definition("ett", "0.1", YAML) == "ett:0.1"  # same text: no-op
    with pytest.raises(RegistryError, match="already registered with different content") as info:
        registry.register_definition("ett", "0.1", YAML + "# changed\n")
    assert "ett:0.2" in str(info.value)
    assert registry.get_definition("ett:0.1") == YAML


def test_download_verifies_the_checksum(registry, model_file, tmp_path):
    registry.register_definition("ett", "0.1", YAML)
    entry = registry.register_version("ett", "ett:0.1", model_file)
    _, local = registry.download("ett", tmp_path)
    assert local.read_bytes() == model_file.read_bytes()
    stored = Path(entry.artifact_uri.removeprefix("file://"))
    stored.write_bytes(b"corrupted" + stored.read_bytes()[9:])
    with pytest.raises(ChecksumMismatchError, match="is corrupted"):
        registry.download("ett/1", tmp_path / "again")


def test_artifact_store_failure_leaves_no_metadata(tmp_path, model_file):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the artifact root is a file: every write fails
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}", LocalArtifactStore(blocked))
    registry.register_definition("ett", "0.1", YAML)
    with pytest.raises(ArtifactError, match="cannot create the model folder"):
        registry.register_version("ett", "ett:0.1", model_file)
    assert rows(registry, "amml_model_versions") == 0


class CorruptingStore(LocalArtifactStore):
    """Fault injection on a real local store: what is read back differs from what was written."""

    def get(self, uri, local_path):
        super().get(uri, local_path)
        Path(local_path).write_bytes(b"bitrot")


def test_a_write_that_does_not_verify_is_rolled_back(tmp_path, model_file):
    store = CorruptingStore(tmp_path / "artifacts")
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}", store)
    registry.register_definition("ett", "0.1", YAML)
    with pytest.raises(ChecksumMismatchError):
        registry.register_version("ett", "ett:0.1", model_file)
    assert rows(registry, "amml_model_versions") == 0
    assert list(store.list_uris()) == [], "the unverified file was removed"


def test_database_failure_after_the_artifact_removes_the_artifact(registry, model_file):
    registry.register_definition("ett", "0.1", YAML)
    with registry.engine.begin() as conn:  # a schema the insert cannot satisfy: the metadata step fails
        conn.execute(sa.text("drop table amml_model_tags"))
    with pytest.raises(RegistryError):
        registry.register_version("ett", "ett:0.1", model_file, tags={"k": "v"})
    assert rows(registry, "amml_model_versions") == 0
    assert list(registry.artifacts.list_uris()) == []


class DiesAfterWriting(LocalArtifactStore):
    """The process is killed right after the files are written, before any metadata: what gc is for."""

    def put(self, files, key):
        super().put(files, key)
        os._exit(3)


def _die_while_registering(db_url, root, model_file):
    ModelRegistry(db_url, DiesAfterWriting(root)).register_version("ett", "ett:0.1", Path(model_file))


def killed_registration(registry, model_file):
    """Register in a child process that dies after writing; return the URI of the file it left behind."""
    before = {uri for uri, _ in registry.artifacts.list_uris()}
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_die_while_registering, args=(registry.db_url, registry.artifacts.root, model_file))
    child.start()
    child.join(60)
    assert child.exitcode == 3
    [left] = {uri for uri, _ in registry.artifacts.list_uris()} - before
    return left


def age_writes(registry, seconds):
    """Make every recorded, unfinished write look `seconds` old."""
    with Session(registry.engine) as session, session.begin():
        for write in session.scalars(sa.select(ArtifactWrite)):
            write.created_at = datetime.now(UTC) - timedelta(seconds=seconds)


def test_gc_removes_only_old_orphans(registry, model_file):
    registry.register_definition("ett", "0.1", YAML)
    kept = registry.register_version("ett", "ett:0.1", model_file)
    orphan = killed_registration(registry, model_file)
    age_writes(registry, 7200)
    fresh = killed_registration(registry, model_file)
    assert registry.gc(grace_seconds=3600, dry_run=True) == [orphan]
    assert registry.gc(grace_seconds=3600) == [orphan]
    remaining = {uri for uri, _ in registry.artifacts.list_uris()}
    assert remaining == {kept.artifact_uri, fresh}
    assert registry.gc(grace_seconds=3600) == [], "nothing is reported twice"


def _register_one(db_url, root, model_file, queue):
    registry = ModelRegistry(db_url, LocalArtifactStore(root))
    queue.put(registry.register_version("ett", "ett:0.1", Path(model_file)).version)


def test_parallel_registrations_get_distinct_versions(tmp_path, model_file):
    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    ModelRegistry(db_url, LocalArtifactStore(tmp_path / "a")).register_definition("ett", "0.1", YAML)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_register_one, args=(db_url, tmp_path / "a", model_file, queue)) for _ in range(8)]
    for p in procs:
        p.start()
    versions = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert versions == list(range(1, 9))


def test_cli_model_commands(tmp_path, model_file, monkeypatch, capsys):
    from airflow_amml.cli import main

    monkeypatch.setenv("AMML_REGISTRY_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("AMML_ARTIFACTS", str(tmp_path / "cli-artifacts"))
    ModelRegistry.from_config().register_definition("ett", "0.1", YAML)
    assert main(["model", "register", str(model_file), "--definition", "ett:0.1"]) == 0
    assert main(["model", "alias", "champion", "ett/1"]) == 0
    assert main(["model", "list"]) == 0
    assert main(["model", "show", "ett@champion"]) == 0
    assert main(["model", "show", "ett@nope"]) == 1
    out, err = capsys.readouterr()
    assert "registered ett/1" in out and "@champion" in out and '"version": 1' in out
    assert "no alias 'ett@nope'" in err


def test_a_registry_made_by_the_first_schema_is_upgraded_in_place(tmp_path, model_file):
    from alembic import command
    from alembic.config import Config

    from airflow_amml.registry.database import MIGRATIONS

    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(db_url).begin() as conn:  # a database as release 0001 left it
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        assert not sa.inspect(conn).has_table("amml_artifact_writes")
    registry = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "a"))
    registry.register_definition("ett", "0.1", YAML)
    assert registry.register_version("ett", "ett:0.1", model_file).version == 1
    assert rows(registry, "amml_artifact_writes") == 0
