"""The registry against REAL services: a throwaway PostgreSQL cluster and a Hadoop MiniDFSCluster (WebHDFS),
both started by tests/services/fixtures.py. Faults are real too: the servers are stopped or made read-only."""

import multiprocessing as mp
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_amml.registry import (
    ArtifactError,
    ChecksumMismatchError,
    HdfsArtifactStore,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
)
from airflow_amml.run_config import RunConfig
from tests.registry.test_registry import age_writes
from tests.services.fixtures import airflow_conn_env

YAML = "name: ett\nversion: '0.1'\n"


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(64 * 1024))
    return path


@pytest.fixture
def registry(postgres_url, hdfs_cluster, hdfs_test_dir):
    registry = ModelRegistry(postgres_url, HdfsArtifactStore(hdfs_cluster.client(), hdfs_test_dir))
    registry.register_definition("ett", "0.1", YAML)
    return registry


def count_versions(url):
    with sa.create_engine(url).connect() as conn:
        return conn.execute(sa.text("select count(*) from amml_model_versions")).scalar()


def hdfs_files(hdfs_cluster, root):
    client = hdfs_cluster.client()
    return (
        [f"{dirpath}/{f}" for dirpath, _, files in client.walk(root) for f in files]
        if client.status(root, strict=False)
        else []
    )


def test_register_resolve_and_download_through_hdfs(registry, model_file, tmp_path, hdfs_cluster, hdfs_test_dir):
    first = registry.register_version("ett", "ett:0.1", model_file, scaler={"kind": "minmax"})
    registry.register_version("ett", "ett:0.1", model_file)
    registry.set_alias("ett", "champion", 1)
    assert first.artifact_uri.startswith(f"hdfs://{hdfs_test_dir}/ett/")
    assert registry.resolve("ett").version == 2 and registry.resolve("ett@champion").scaler == {"kind": "minmax"}
    _, local = registry.download("ett@champion", tmp_path / "dl")
    assert local.read_bytes() == model_file.read_bytes()
    assert len(hdfs_files(hdfs_cluster, hdfs_test_dir)) == 2


def test_corrupted_artifact_is_refused(registry, model_file, tmp_path, hdfs_cluster):
    entry = registry.register_version("ett", "ett:0.1", model_file)
    path = entry.artifact_uri.removeprefix("hdfs://")
    hdfs_cluster.client().write(path, data=b"tampered", overwrite=True)
    with pytest.raises(ChecksumMismatchError, match="is corrupted"):
        registry.download("ett/1", tmp_path)
    assert not list(tmp_path.glob("*.keras")), "the corrupted file is not left for anyone to load"


def test_unknown_model_lists_what_exists(registry, model_file):
    registry.register_version("ett", "ett:0.1", model_file)
    with pytest.raises(ModelNotFoundError, match="ett has versions 1 and no aliases"):
        registry.resolve("ett@champion")


def test_hdfs_down_during_registration_leaves_nothing(registry, model_file, hdfs_cluster, postgres_url):
    hdfs_cluster.stop()
    try:
        with pytest.raises(ArtifactError, match="HDFS upload failed"):
            registry.register_version("ett", "ett:0.1", model_file)
    finally:
        hdfs_cluster.start()
    assert count_versions(postgres_url) == 0


def test_hdfs_refusing_writes_leaves_nothing(registry, model_file, hdfs_cluster, hdfs_test_dir, postgres_url):
    hdfs_cluster.set_safemode(True)
    try:
        with pytest.raises(ArtifactError, match="SafeMode"):
            registry.register_version("ett", "ett:0.1", model_file)
    finally:
        hdfs_cluster.set_safemode(False)
    assert count_versions(postgres_url) == 0
    assert hdfs_files(hdfs_cluster, hdfs_test_dir) == []


class StopsPostgresAfterWrite(HdfsArtifactStore):
    """A real HDFS store; right after the files are written, the real PostgreSQL server is stopped."""

    def __init__(self, client, root, server):
        super().__init__(client, root)
        self.server = server

    def put(self, files, name):
        uris = super().put(files, name)
        self.server.stop()
        return uris


def test_postgres_down_after_the_artifact_was_written(
    postgres_server, postgres_url, hdfs_cluster, hdfs_test_dir, model_file
):
    store = StopsPostgresAfterWrite(hdfs_cluster.client(), hdfs_test_dir, postgres_server)
    registry = ModelRegistry(postgres_url, store)
    registry.register_definition("ett", "0.1", YAML)
    with pytest.raises(RegistryError):
        registry.register_version("ett", "ett:0.1", model_file)
    postgres_server.start()
    assert count_versions(postgres_url) == 0, "no metadata row"
    assert hdfs_files(hdfs_cluster, hdfs_test_dir) == [], "and the written file was removed again"


class CleanupFails(HdfsArtifactStore):
    """A real HDFS store; what is read back differs (so the registration is rolled back) and the clean-up fails."""

    def get(self, uri, local_path):
        super().get(uri, local_path)
        Path(local_path).write_bytes(b"bitrot")

    def delete_folder(self, key):
        raise ArtifactError("HDFS delete failed: injected")


def test_gc_removes_what_a_failed_clean_up_left_and_only_that(
    registry, postgres_url, hdfs_cluster, hdfs_test_dir, model_file
):
    kept = registry.register_version("ett", "ett:0.1", model_file)
    broken = ModelRegistry(postgres_url, CleanupFails(hdfs_cluster.client(), hdfs_test_dir))
    with pytest.raises(ChecksumMismatchError):
        broken.register_version("ett", "ett:0.1", model_file)
    assert len(hdfs_files(hdfs_cluster, hdfs_test_dir)) == 2
    assert registry.gc(grace_seconds=60) == [], "within the grace period"
    age_writes(registry, 7200)
    [removed] = registry.gc(grace_seconds=60)
    assert removed.startswith(f"hdfs://{hdfs_test_dir}/ett/") and removed != kept.artifact_uri
    assert hdfs_files(hdfs_cluster, hdfs_test_dir) == [kept.artifact_uri.removeprefix("hdfs://")]
    assert registry.gc(grace_seconds=60) == []


def _register(url, namenode, root, model_file, queue):
    from hdfs import InsecureClient

    registry = ModelRegistry(url, HdfsArtifactStore(InsecureClient(namenode, user="root"), root))
    queue.put(registry.register_version("ett", "ett:0.1", Path(model_file)).version)


def test_parallel_registrations_get_distinct_versions(registry, postgres_url, hdfs_cluster, hdfs_test_dir, model_file):
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing shared but PostgreSQL and HDFS
    queue = ctx.Queue()
    args = (postgres_url, hdfs_cluster.namenode_url, hdfs_test_dir, str(model_file), queue)
    procs = [ctx.Process(target=_register, args=args) for _ in range(8)]
    for p in procs:
        p.start()
    versions = sorted(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
    assert versions == list(range(1, 9))
    assert len({v.artifact_uri for v in registry.list_versions("ett")}) == 8
    assert len(hdfs_files(hdfs_cluster, hdfs_test_dir)) == 8


def test_configured_through_airflow_connections(postgres_url, hdfs_cluster, hdfs_test_dir, model_file, monkeypatch):
    airflow_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    monkeypatch.setenv("AIRFLOW_CONN_AMML_REGISTRY", airflow_url)
    monkeypatch.setenv("AIRFLOW_CONN_WEBHDFS_DEFAULT", airflow_conn_env(hdfs_cluster))
    from operators.connections import connection_overrides

    overrides = connection_overrides(registry_conn_id="amml_registry", artifact_conn_id="webhdfs_default")
    registry = ModelRegistry.from_config(RunConfig.from_environment(**overrides))
    assert registry.engine.dialect.name == "postgresql"
    assert isinstance(registry.artifacts, HdfsArtifactStore)
    registry.register_definition("ett", "0.1", YAML)
    entry = registry.register_version("ett", "ett:0.1", model_file)
    assert entry.artifact_uri.startswith("hdfs:///amml/models/ett/")
    registry.artifacts.delete(entry.artifact_uri)
