"""The scheme → artifact store registry (mlflow's ArtifactRepositoryRegistry): built-ins registered in code,
third-party stores through the `amml.artifact_stores` entry point group, each version read through the store
its own URI names."""

import os
import textwrap

import pytest
import sqlalchemy as sa

from airflow_amml.registry import (
    ArtifactError,
    ArtifactStore,
    ArtifactStoreRegistry,
    HdfsArtifactStore,
    LocalArtifactStore,
    ModelRegistry,
    artifact_store_for,
)
from airflow_amml.registry import artifact_store_registry as store_registry

YAML = "name: ett\nversion: '0.1'\n"


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(2048))
    return path


# ---- the built-ins ------------------------------------------------------------------------------------


def test_the_built_in_schemes_work_without_any_entry_point(tmp_path):
    registry = store_registry.builtin_registry(load_entry_points=False)
    assert registry.schemes() == ["file", "hdfs", "http", "https", "webhdfs"]
    assert isinstance(registry.get_store(str(tmp_path)), LocalArtifactStore)
    assert registry.get_store(tmp_path.as_uri()).root == tmp_path
    hdfs = registry.get_store("webhdfs://namenode:9870/amml/models")  # builds a client; connects on first use
    assert isinstance(hdfs, HdfsArtifactStore) and hdfs.root == "/amml/models"


def test_an_unknown_scheme_lists_the_registered_schemes():
    with pytest.raises(ArtifactError, match="unknown artifact location 's3://bucket/x'") as info:
        artifact_store_for("s3://bucket/x")
    message = str(info.value)
    assert "registered schemes: file, hdfs, http, https, webhdfs" in message, message
    assert "amml.artifact_stores" in info.value.hint


def test_a_store_class_must_open_from_a_uri():
    class NoFromUri(ArtifactStore):  # implements the file verbs, but not how to open one from a location
        pass

    registry = ArtifactStoreRegistry(load_entry_points=False)
    with pytest.raises(TypeError, match="NoFromUri for `x`: it does not implement from_uri"):
        registry.register("x", NoFromUri)
    with pytest.raises(ArtifactError, match="returned str, not a store"):
        registry.register("y", lambda uri: "not a store")
        registry.get_store("y://z")


# ---- a version is read through the store its URI names ------------------------------------------------


def test_a_version_stays_readable_after_the_default_location_moves(tmp_path, model_file, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    first = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "old-root"))
    first.register_definition("ett", "0.1", YAML)
    old = first.register_version("ett", "ett:0.1", model_file)

    moved = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "new-root"))  # another root, same database
    assert not moved.artifacts.holds(old.artifact_uri)
    _, local = moved.download(old.ref, tmp_path / "dl-1")
    assert local.read_bytes() == model_file.read_bytes()
    new = moved.register_version("ett", "ett:0.1", model_file)
    assert new.artifact_uri.startswith((tmp_path / "new-root").as_uri()), "new versions go to the new default"

    monkeypatch.setenv("AMML_REGISTRY_URL", db_url)
    monkeypatch.setenv("AMML_ARTIFACTS", "webhdfs://namenode.invalid:9870/amml/models")  # another kind of store
    elsewhere = ModelRegistry.from_config()
    assert isinstance(elsewhere.artifacts, HdfsArtifactStore)
    for entry, folder in ((old, "dl-2"), (new, "dl-3")):
        _, local = elsewhere.download(entry.ref, tmp_path / folder)
        assert local.read_bytes() == model_file.read_bytes()


def test_an_hdfs_version_is_read_over_the_configured_connection_at_its_own_root(tmp_path):
    class Client:
        def __init__(self):
            self.downloads = []

        def download(self, path, local, overwrite):
            self.downloads.append(path)
            open(local, "wb").close()

    store = HdfsArtifactStore(Client(), "/amml/new")
    old_uri = "hdfs:///amml/old/ett/0123/model.keras"
    assert not store.holds(old_uri)
    reader = store.at_root("hdfs:///amml/old")
    assert reader.client is store.client and reader.root == "/amml/old"
    reader.get(old_uri, tmp_path / "m")
    assert store.client.downloads == ["/amml/old/ett/0123/model.keras"]
    assert store.at_root("file:///amml/old") is None


# ---- third-party stores -------------------------------------------------------------------------------

MEMORY_STORE = '''
from pathlib import Path
from airflow_amml.registry import ArtifactStore

FILES = {}  # uri -> bytes, shared by every store of this process


class MemoryStore(ArtifactStore):
    """memory://ROOT/KEY/FILE: a third party's store, known only through its entry point."""

    def __init__(self, root):
        self.root = root.rstrip("/")

    @classmethod
    def from_uri(cls, uri):
        return cls(uri)

    def folder_uri(self, key):
        return f"{self.root}/{key}"

    def put(self, files, key):
        uris = [f"{self.root}/{key}/{Path(f).name}" for f in files]
        for f, uri in zip(files, uris):
            FILES[uri] = Path(f).read_bytes()
        return uris

    def get(self, uri, local_path):
        Path(local_path).write_bytes(FILES[uri])

    def key_of(self, uri):
        return uri[len(self.root) + 1:].rsplit("/", 1)[0]

    def list_folder(self, key):
        return sorted(u for u in FILES if u.startswith(f"{self.root}/{key}/"))

    def delete_folder(self, key):
        for uri in self.list_folder(key):
            del FILES[uri]

    def list_uris(self):
        return ((u, 0.0) for u in FILES if u.startswith(self.root + "/"))
'''


@pytest.fixture
def memory_store_distribution(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info folder on sys.path) declaring two `amml.artifact_stores`
    entry points: a working one and one whose module does not exist."""
    site = tmp_path / "site"
    (site / "amml_memory").mkdir(parents=True)
    (site / "amml_memory" / "__init__.py").write_text(textwrap.dedent(MEMORY_STORE))
    dist = site / "amml_memory-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: amml-memory\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[amml.artifact_stores]\nmemory = amml_memory:MemoryStore\nbroken = amml_no_such_module:Store\n"
    )
    monkeypatch.syspath_prepend(str(site))
    fresh = store_registry.builtin_registry()  # the process-wide one may have read the entry points already
    monkeypatch.setattr(store_registry, "_registry", fresh)
    return fresh


def test_a_third_party_store_through_an_entry_point_is_used(memory_store_distribution, model_file, monkeypatch):
    monkeypatch.setenv("AMML_ARTIFACTS", "memory://bucket/models")
    with pytest.warns(UserWarning, match=r"entry point 'broken' \(amml_no_such_module:Store\)"):
        registry = ModelRegistry.from_config()
    assert type(registry.artifacts).__name__ == "MemoryStore"
    registry.register_definition("ett", "0.1", YAML)
    entry = registry.register_version("ett", "ett:0.1", model_file)
    assert entry.artifact_uri.startswith("memory://bucket/models/ett/")
    assert "memory" in memory_store_distribution.schemes() and "broken" not in memory_store_distribution.schemes()
    with pytest.raises(ArtifactError, match=r"registered schemes: file, hdfs, http, https, memory, webhdfs"):
        artifact_store_for("s3://bucket")


def test_a_version_in_a_third_party_store_stays_readable_from_a_local_default(
    memory_store_distribution, model_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("AMML_ARTIFACTS", "memory://bucket/models")
    with pytest.warns(UserWarning):
        registry = ModelRegistry.from_config()
    registry.register_definition("ett", "0.1", YAML)
    registry.register_version("ett", "ett:0.1", model_file)
    monkeypatch.setenv("AMML_ARTIFACTS", str(tmp_path / "local"))
    _, local = ModelRegistry.from_config().download("ett/1", tmp_path / "dl")
    assert local.read_bytes() == model_file.read_bytes()


# ---- reading versions costs a bounded number of queries -----------------------------------------------


def count_queries(engine):
    statements = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_listing_versions_takes_the_same_few_queries_for_one_row_or_many(tmp_path, model_file):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}", LocalArtifactStore(tmp_path / "a"))
    registry.register_definition("ett", "0.1", YAML)
    registry.register_definition("other", "1", "name: other\n")
    registry.register_version("ett", "ett:0.1", model_file, tags={"owner": "a"})
    statements = count_queries(registry.engine)
    [one] = registry.list_versions()
    for_one_row = len(statements)
    for version in range(2, 9):
        registry.register_version("ett", "ett:0.1", model_file, tags={"owner": "a", "n": str(version)})
        registry.set_alias("ett", f"a{version}", version)
    registry.register_version("other", "other:1", model_file)
    statements.clear()
    listing = registry.list_versions()
    assert len(listing) == 9 and len(statements) == for_one_row <= 4, statements
    assert [(v.name, v.version) for v in listing] == [("ett", n) for n in range(1, 9)] + [("other", 1)]
    assert listing[4].aliases == ("a5",) and listing[4].tags == {"owner": "a", "n": "5"}
    assert listing[8].definition == "other:1" and listing[8].tags == {} and listing[8].aliases == ()
    assert one.tags == {"owner": "a"} and one.definition == "ett:0.1"
    statements.clear()
    assert len(registry.list_versions("ett")) == 8 and len(statements) == for_one_row
    statements.clear()
    assert registry.resolve("ett@a3").tags == {"owner": "a", "n": "3"} and len(statements) <= 5
