"""A version's training parameters (MLflow's params): stored as given, checked like metrics, `{}` for versions
registered before migration 0004 added the column; on SQLite and on real PostgreSQL."""

import os

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_amml.registry import InvalidValueError, LocalArtifactStore, ModelRegistry

YAML = "name: ett\nversion: '0.1'\n"
PARAMS = {
    "epochs": 20,
    "batch_size": 32,
    "window": 24,
    "learning_rate": 0.001,
    "features": "HUFL,OT",
    "promote": None,
    "shuffle": True,
}


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(4096))
    return path


def new_registry(db_url, tmp_path):
    registry = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "artifacts"))
    registry.register_definition("ett", "0.1", YAML)
    return registry


@pytest.fixture
def registry(tmp_path):
    return new_registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)


def versions(registry):
    with registry.engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from amml_model_versions")).scalar()


def check_round_trip(registry, model_file):
    entry = registry.register_version("ett", "ett:0.1", model_file, params=PARAMS, metrics={"loss": 0.1})
    assert entry.params == PARAMS
    assert registry.resolve("ett/1").params == PARAMS and registry.list_versions("ett")[0].params == PARAMS
    assert registry.register_version("ett", "ett:0.1", model_file).params == {}, "no params: an empty mapping"


def test_params_are_stored_and_read_back(registry, model_file):
    check_round_trip(registry, model_file)


def test_the_json_api_entry_carries_the_params(registry, model_file):
    from airflow_amml.ui.context import entry_json  # what GET /amml/models/{ref} returns

    entry = registry.register_version("ett", "ett:0.1", model_file, params=PARAMS)
    assert entry_json(entry)["params"] == PARAMS


def test_params_are_stored_and_read_back_on_postgres(postgres_url, tmp_path, model_file):
    check_round_trip(new_registry(postgres_url, tmp_path), model_file)


def test_numpy_scalars_become_plain_json_values(registry, model_file):
    entry = registry.register_version(
        "ett", "ett:0.1", model_file, params={"epochs": np.int64(3), "rate": np.float32(0.5), "flag": np.bool_(True)}
    )
    assert entry.params == {"epochs": 3, "rate": 0.5, "flag": 1.0}
    assert type(entry.params["epochs"]) is int, "a whole number stays whole"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"features": ["HUFL", "OT"]}, r"param 'features' must be a number, a bool, None or a string; got list"),
        ({"layers": {"units": 8}}, r"param 'layers' must be a number, a bool, None or a string; got dict"),
        ({"learning_rate": float("nan")}, r"param 'learning_rate' is nan: only finite numbers"),
        ({"epochs": 2**64}, r"param 'epochs' is too large"),
        ({"bad name!": 1}, r"param name 'bad name!' is not valid"),
        ({"note": "x" * 1001}, r"param 'note' is 1001 characters long; at most 1000"),
        ({"note": "two\nlines"}, r"contains a control character"),
        ({f"p{i}": i for i in range(101)}, r"101 params; at most 100 are allowed per version"),
        ("epochs=3", r"params must be a mapping; got str"),
    ],
)
def test_params_that_cannot_be_kept_are_refused_before_anything_is_written(registry, model_file, params, message):
    with pytest.raises(InvalidValueError, match=message):
        registry.register_version("ett", "ett:0.1", model_file, params=params)
    assert versions(registry) == 0 and not list((registry.artifacts.root).glob("ett/*"))


def test_a_list_param_is_refused_with_a_hint(registry, model_file):
    with pytest.raises(InvalidValueError) as info:
        registry.register_version("ett", "ett:0.1", model_file, params={"features": ["HUFL", "OT"]})
    assert "comma-separated" in info.value.hint


def test_versions_registered_before_the_params_column_read_as_no_params(tmp_path, model_file):
    from alembic import command
    from alembic.config import Config

    from airflow_amml.registry.database import MIGRATIONS

    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = new_registry(f"sqlite:///{tmp_path / 'scratch.db'}", tmp_path)  # a real artifact to point the row at
    stored = old.register_version("ett", "ett:0.1", model_file)
    with sa.create_engine(db_url).begin() as conn:  # a registry as revision 0003 left it, with one version
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        assert "params" not in {c["name"] for c in sa.inspect(conn).get_columns("amml_model_versions")}
        conn.execute(
            sa.text(
                "insert into amml_model_definitions (name, version, yaml, sha256, created_at) "
                "values ('ett', '0.1', :yaml, 'x', '2024-05-01 10:00:00')"
            ),
            {"yaml": YAML},
        )
        conn.execute(
            sa.text(
                "insert into amml_model_versions (name, version, definition_id, artifact_uri, artifact_size, "
                "artifact_sha256, metrics, status, created_at) values ('ett', 1, 1, :uri, :size, :sha, "
                "'{\"loss\": 0.5}', 'ready', '2024-05-01 10:00:00')"
            ),
            {"uri": stored.artifact_uri, "size": stored.artifact_size, "sha": stored.artifact_sha256},
        )
    registry = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "artifacts"))  # upgrades to 0004
    entry = registry.resolve("ett/1")
    assert entry.params == {} and entry.metrics == {"loss": 0.5}
    assert registry.register_version("ett", "ett:0.1", model_file, params={"epochs": 2}).params == {"epochs": 2}


@pytest.mark.parametrize("package", ["airflow_amml.registry.database", "airflow_amml.runtime_db"])
def test_the_head_revision_each_process_checks_is_the_last_migration(package):
    """A database is upgraded only when its revision differs from HEAD_REVISION: a constant behind the newest
    migration would leave every database at the old head without the new columns."""
    import importlib

    from alembic.script import ScriptDirectory

    module = importlib.import_module(package)
    assert module.HEAD_REVISION == ScriptDirectory(str(module.MIGRATIONS)).get_current_head()


def test_a_registry_at_0004_gains_the_intervals_column(tmp_path, model_file):
    from alembic import command
    from alembic.config import Config

    from airflow_amml.registry.database import MIGRATIONS

    db_url = f"sqlite:///{tmp_path / 'at-0004.db'}"
    with sa.create_engine(db_url).begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    registry = ModelRegistry(db_url, LocalArtifactStore(tmp_path / "artifacts"))  # upgrades it to the head
    registry.register_definition("ett", "0.1", YAML)
    intervals = {"method": "test", "forecasts": 9, "levels": {"80": [0.5, 0.75]}}
    entry = registry.register_version("ett", "ett:0.1", model_file, intervals=intervals)
    assert registry.resolve(entry.ref).intervals == intervals


def test_a_registry_migrated_by_a_newer_amml_is_a_clear_error(tmp_path):
    """A database at a revision this version does not have (a newer AMML migrated it during a rolling upgrade)
    is a registry error that says what to do, not Alembic's exception."""
    from airflow_amml.registry import RegistryError

    db_url = f"sqlite:///{tmp_path / 'newer.db'}"
    with sa.create_engine(db_url).begin() as conn:
        conn.execute(sa.text("create table amml_alembic_version (version_num varchar(32) primary key)"))
        conn.execute(sa.text("insert into amml_alembic_version values ('0099')"))
    with pytest.raises(RegistryError, match=r"cannot migrate the registry database sqlite:.*0099") as info:
        ModelRegistry(db_url, LocalArtifactStore(tmp_path / "artifacts")).resolve("ett")
    assert "version that last migrated it" in info.value.hint
