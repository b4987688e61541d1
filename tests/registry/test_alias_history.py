"""Alias history, first-champion creation, lineage lookups and plots: on SQLite + a local folder, on real
PostgreSQL (concurrency) and on real HDFS (plots)."""

import itertools
import multiprocessing as mp
import os
import struct
import zlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from airflow_amml.registry import (
    AliasChange,
    ArtifactError,
    HdfsArtifactStore,
    InvalidValueError,
    Lineage,
    LocalArtifactStore,
    ModelNotFoundError,
    ModelRegistry,
)
from airflow_amml.registry import registry as registry_module

YAML = "name: ett\nversion: '0.1'\n"


def png(width: int, height: int) -> bytes:
    """A real, valid PNG (grey pixels), built by the PNG spec: signature, IHDR, IDAT (zlib), IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([128]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(os.urandom(4096))
    loss, prediction = tmp_path / "loss.png", tmp_path / "prediction.png"
    loss.write_bytes(png(40, 30))
    prediction.write_bytes(png(64, 16))
    return model, {"loss": loss, "prediction": prediction}


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", LocalArtifactStore(tmp_path / "artifacts"))
    registry.register_definition("ett", "0.1", YAML)
    return registry


def register(registry, files, **kwargs):
    model, plots = files
    return registry.register_version("ett", "ett:0.1", model, plots=plots, **kwargs)


def test_every_move_is_recorded_newest_first_with_who_and_why(registry, files):
    for _ in range(3):
        register(registry, files)
    before = datetime.now(UTC)
    registry.set_alias("ett", "champion", 1, set_by="alice", reason="first good one")
    registry.set_alias("ett", "challenger", 2)
    registry.set_alias("ett", "champion", 3, set_by="bob")
    history = registry.alias_history("ett")
    assert [(c.alias, c.version, c.previous_version, c.set_by, c.reason) for c in history] == [
        ("champion", 3, 1, "bob", None),
        ("challenger", 2, None, None, None),
        ("champion", 1, None, "alice", "first good one"),
    ]
    assert all(isinstance(c, AliasChange) and c.set_at >= before and c.set_at.tzinfo for c in history)
    assert [c.version for c in registry.alias_history("ett", "champion")] == [3, 1]
    assert registry.resolve("ett@champion").version == 3


def test_a_refused_move_changes_nothing_and_records_nothing(registry, files):
    register(registry, files)
    with pytest.raises(ModelNotFoundError):
        registry.set_alias("ett", "champion", 2)
    with pytest.raises(InvalidValueError, match="control character"):
        registry.set_alias("ett", "champion", 1, reason="line\nbreak")
    with pytest.raises(InvalidValueError, match="at most 250"):
        registry.set_alias("ett", "champion", 1, set_by="x" * 251)
    assert registry.alias_history("ett") == []
    with pytest.raises(ModelNotFoundError):
        registry.resolve("ett@champion")


def test_set_if_absent_creates_once_and_never_moves(registry, files):
    register(registry, files)
    register(registry, files)
    assert registry.set_alias_if_absent("ett", "champion", 1, set_by="train", reason="first version") is True
    assert registry.set_alias_if_absent("ett", "champion", 2, set_by="train") is False
    assert registry.resolve("ett@champion").version == 1
    [change] = registry.alias_history("ett")
    assert (change.version, change.previous_version, change.set_by, change.reason) == (
        1,
        None,
        "train",
        "first version",
    )


def test_a_missing_alias_names_the_command_and_the_page(registry, files):
    register(registry, files)
    register(registry, files)
    with pytest.raises(ModelNotFoundError) as info:
        registry.resolve("ett@champion")
    assert info.value.hint == (
        "promote a version: `amml model alias champion ett/2`, or on the ML Models page (/amml/ui/models/ett)"
    )


def test_versions_by_lineage_find_what_a_run_registered_oldest_first(registry, files):
    lineage = Lineage(dag_id="ett_train", run_id="manual__1", task_id="train_lstm")
    first = register(registry, files, lineage=lineage)
    register(registry, files, lineage=Lineage(dag_id="ett_train", run_id="manual__2", task_id="train_lstm"))
    third = register(registry, files, lineage=Lineage(dag_id="ett_train", run_id="manual__1", task_id="train_b"))
    assert [v.version for v in registry.versions_by_lineage("ett_train", "manual__1")] == [first.version, 3]
    assert [v.ref for v in registry.versions_by_lineage("ett_train", "manual__1", "train_b")] == [third.ref]
    assert registry.versions_by_lineage("ett_train", "nope") == []


def test_read_plot_returns_the_stored_bytes_and_refuses_unknown_or_oversized(registry, files, monkeypatch):
    register(registry, files)
    assert registry.read_plot("ett/1", "loss") == files[1]["loss"].read_bytes()
    assert registry.read_plot("ett", "prediction") == files[1]["prediction"].read_bytes()
    with pytest.raises(ModelNotFoundError, match=r"no plot 'roc'; its plots: loss, prediction"):
        registry.read_plot("ett/1", "roc")
    size = len(files[1]["loss"].read_bytes())
    monkeypatch.setattr(registry_module, "MAX_PLOT_BYTES", size - 1)
    with pytest.raises(ArtifactError, match=f"is {size} bytes; at most {size - 1} are served"):
        registry.read_plot("ett/1", "loss")


def test_the_upgrade_keeps_existing_aliases_in_the_history(tmp_path, files):
    from alembic import command
    from alembic.config import Config

    from airflow_amml.registry.database import MIGRATIONS

    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(db_url).begin() as conn:  # a registry as revision 0002 left it, with an alias
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(sa.text("insert into amml_model_aliases values ('ett', 'champion', 4, '2024-05-01 10:00:00')"))
    registry = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "a"))
    [change] = registry.alias_history("ett")
    assert (change.alias, change.version, change.previous_version, change.set_by) == ("champion", 4, None, None)
    assert change.reason == "set before alias history was kept" and change.set_at.year == 2024


# ---- real PostgreSQL: concurrency -----------------------------------------------------------------------


def _create_champion(db_url, root, version, start, queue):
    registry = ModelRegistry(db_url, LocalArtifactStore(root))
    start.wait(30)
    queue.put((version, registry.set_alias_if_absent("ett", "champion", version, set_by=f"p{version}")))


def _move_champion(db_url, root, version, start, queue):
    registry = ModelRegistry(db_url, LocalArtifactStore(root))
    start.wait(30)
    for _ in range(5):
        registry.set_alias("ett", "champion", version, set_by=f"p{version}")
    queue.put(version)


@pytest.fixture
def pg_registry(postgres_url, tmp_path, files):
    registry = ModelRegistry(postgres_url, LocalArtifactStore(tmp_path / "artifacts"))
    registry.register_definition("ett", "0.1", YAML)
    for _ in range(6):
        register(registry, files)
    return registry


def run_racers(target, registry, tmp_path, n=6):
    ctx = mp.get_context("fork")
    start, queue = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(registry.db_url, tmp_path / "artifacts", v, start, queue))
        for v in range(1, n + 1)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def test_set_if_absent_on_postgres_creates_the_alias_once_under_concurrency(pg_registry, tmp_path):
    results = run_racers(_create_champion, pg_registry, tmp_path)
    winners = [version for version, created in results if created]
    assert len(winners) == 1, results
    assert pg_registry.resolve("ett@champion").version == winners[0]
    [change] = pg_registry.alias_history("ett")
    assert (change.version, change.previous_version, change.set_by) == (winners[0], None, f"p{winners[0]}")


def test_concurrent_moves_on_postgres_form_one_unbroken_chain(pg_registry, tmp_path):
    """Each history row's previous_version is the version the row before it set: no move is lost or
    recorded against a stale previous value (the row lock serialises the moves)."""
    run_racers(_move_champion, pg_registry, tmp_path)
    history = pg_registry.alias_history("ett", "champion")
    assert len(history) == 30
    oldest_first = history[::-1]
    assert oldest_first[0].previous_version is None
    assert all(later.previous_version == earlier.version for earlier, later in itertools.pairwise(oldest_first))
    assert pg_registry.resolve("ett@champion").version == history[0].version


# ---- real HDFS: plots --------------------------------------------------------------------------------------


def test_read_plot_from_hdfs_returns_the_stored_bytes(postgres_url, hdfs_cluster, hdfs_test_dir, files):
    registry = ModelRegistry(postgres_url, HdfsArtifactStore(hdfs_cluster.client(), hdfs_test_dir))
    registry.register_definition("ett", "0.1", YAML)
    entry = register(registry, files)
    assert entry.plots["loss"].startswith(f"hdfs://{hdfs_test_dir}/ett/")
    assert registry.read_plot("ett/1", "loss") == files[1]["loss"].read_bytes()
    assert registry.read_plot("ett/1", "prediction") == files[1]["prediction"].read_bytes()
    hdfs_cluster.client().delete(entry.plots["loss"].removeprefix("hdfs://"))
    with pytest.raises(ArtifactError, match="is missing from the artifact store"):
        registry.read_plot("ett/1", "loss")


def test_read_plot_from_hdfs_refuses_an_oversized_file_before_reading_it(
    postgres_url, hdfs_cluster, hdfs_test_dir, files, monkeypatch
):
    registry = ModelRegistry(postgres_url, HdfsArtifactStore(hdfs_cluster.client(), hdfs_test_dir))
    registry.register_definition("ett", "0.1", YAML)
    register(registry, files)
    reads = []
    client = registry.artifacts.client
    monkeypatch.setattr(client, "read", lambda *a, **k: reads.append(a))
    monkeypatch.setattr(registry_module, "MAX_PLOT_BYTES", 10)
    with pytest.raises(ArtifactError, match="at most 10 are served"):
        registry.read_plot("ett/1", "loss")
    assert reads == [], "the size is checked from the file's status, nothing is downloaded"


def test_the_cli_records_who_moved_an_alias_and_lists_the_history(tmp_path, files, monkeypatch, capsys):
    from airflow_amml.cli import main

    monkeypatch.setenv("AMML_REGISTRY_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("AMML_ARTIFACTS", str(tmp_path / "cli-artifacts"))
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", YAML)
    register(registry, files)
    register(registry, files)
    assert main(["model", "alias", "champion", "ett/1"]) == 0
    assert main(["model", "alias", "champion", "ett/2", "--reason", "lower val_loss"]) == 0
    assert [(c.version, c.set_by, c.reason) for c in registry.alias_history("ett")] == [
        (2, "carol (amml)", "lower val_loss"),
        (1, "carol (amml)", None),
    ]
    capsys.readouterr()
    assert main(["model", "aliases", "ett"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "@champion" in lines[0] and "1 → 2" in lines[0] and "carol (amml)  lower val_loss" in lines[0]
    assert "→ 1" in lines[1]
