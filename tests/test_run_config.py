"""RunConfig: one frozen, picklable configuration; `from_environment` reads each variable of its table into its
field, overrides win, and bad values are refused with today's messages. `run_program` merges a program's own
configuration (dag-block batching, source hash) in one place."""

import dataclasses
import pickle
from pathlib import Path

import pytest

from airflow_amml.models.errors import AmmlModelError
from airflow_amml.registry.errors import RegistryError
from airflow_amml.run import program_config
from airflow_amml.run_config import ENVIRONMENT, Lineage, RunConfig
from airflow_amml.runtime.errors import PipelineError
from compiler import ProgramCache, compile_source

# environment variable, its text, the field it fills, the value expected there
READS = [
    ("AMML_HOME", "/srv/amml", "home", Path("/srv/amml")),
    ("AMML_CACHE", "/srv/cache", "cache_dir", Path("/srv/cache")),
    ("AMML_ETT_PATH", "/data/ETTh1.csv", "ett_path", Path("/data/ETTh1.csv")),
    ("AMML_CATALOG", "/etc/amml/catalog.yaml", "catalog_file", Path("/etc/amml/catalog.yaml")),
    ("AMML_DB_URL", "postgresql://db/amml", "db_url", "postgresql://db/amml"),
    ("AMML_DATABASES", '{"warehouse": "sqlite:////wh.db"}', "databases", {"warehouse": "sqlite:////wh.db"}),
    ("AMML_WEBHOOKS", '{"ops": "https://hooks.example.com/amml"}', "webhooks", {"ops": "https://hooks.example.com/amml"}),
    ("AMML_REGISTRY_URL", "postgresql://db/registry", "registry_url", "postgresql://db/registry"),
    ("AMML_ARTIFACTS", "webhdfs://nn:9870/amml/models", "artifact_location", "webhdfs://nn:9870/amml/models"),
    ("AMML_MODEL_PATH", "/m/one:/m/two:", "model_paths", (Path("/m/one"), Path("/m/two"))),
    ("AMML_OUTPUT_ROOT", "/srv/out", "output_root", Path("/srv/out")),
    ("AMML_INPUT_ROOT", "/srv/in", "input_root", Path("/srv/in")),
    ("AMML_SHM_TRANSPORT", "0", "shm_transport", False),
    ("AMML_SHM_TRANSPORT", "1", "shm_transport", True),
    ("AMML_TRAIN_MEMORY_LIMIT", "512MiB", "train_memory_limit", 512 * 1024**2),
    ("AMML_MAX_PROCESSES", "3", "max_processes", 3),
]


def test_the_table_covers_every_environment_variable():
    assert {variable for variable, *_ in READS} == set(ENVIRONMENT)


@pytest.mark.parametrize(("variable", "raw", "name", "expected"), READS, ids=[f"{r[0]}={r[1]}" for r in READS])
def test_each_variable_fills_its_field(variable, raw, name, expected):
    config = RunConfig.from_environment({variable: raw})
    assert getattr(config, name) == expected
    assert getattr(RunConfig.from_environment({}), name) != expected or name == "shm_transport"


def test_a_bare_machine_gets_the_defaults_and_overrides_win():
    assert RunConfig.from_environment({}) == RunConfig()
    home = Path.home() / ".local" / "share" / "amml"
    assert RunConfig().home == home and RunConfig().db_url is None and RunConfig().train_memory_limit == 4 * 1024**3
    config = RunConfig.from_environment({"AMML_OUTPUT_ROOT": "/env/out"}, output_root="/mine")
    assert config.output_root == Path("/mine")
    # an overridden field's variable is not even read: a broken one does not stop the run
    assert RunConfig.from_environment({"AMML_DATABASES": "{oops"}, databases={"a": "sqlite://"}).databases == {
        "a": "sqlite://"
    }
    with pytest.raises(TypeError, match=r"no field\(s\) \['output_dir'\]"):
        RunConfig.from_environment({}, output_dir="/x")


def test_the_dags_folder_comes_from_airflows_variables():
    assert RunConfig.from_environment({"AIRFLOW_HOME": "/af"}).dags_folder == Path("/af/dags")
    both = {"AIRFLOW_HOME": "/af", "AIRFLOW__CORE__DAGS_FOLDER": "/dags"}
    assert RunConfig.from_environment(both).dags_folder == Path("/dags")
    assert RunConfig.from_environment({}).dags_folder == Path.home() / "airflow" / "dags"


def test_frozen_all_the_way_down():
    config = RunConfig.from_environment({}, sources={"s": {"path": "/a.csv"}}, databases={"w": "sqlite://"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.output_root = Path("/elsewhere")
    with pytest.raises(TypeError):
        config.sources["t"] = {"path": "/b.csv"}
    with pytest.raises(TypeError):
        config.sources["s"]["path"] = "/b.csv"
    with pytest.raises(TypeError):
        config.databases["x"] = "sqlite://"


def test_picklable_and_equal_after_the_trip():
    config = RunConfig.from_environment(
        {"AMML_DATABASES": '{"w": "sqlite://"}'},
        sources={"s": {"path": "/a.csv", "time_column": "date"}},
        lineage=Lineage(dag_id="d", run_id="r"),
        data_interval=("2017-01-01T00:00:00+00:00", "2017-01-02T00:00:00+00:00"),
        batch_rows=500,
    )
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.sources["s"]["time_column"] == "date"
    with pytest.raises(TypeError):
        again.sources["s"]["path"] = "/b.csv"  # still read-only after the trip


def test_loose_values_are_normalised():
    config = RunConfig(model_paths=["a", Path("b")], output_root="/o", flush_delay=1, data_interval=["s", "e"])
    assert config.model_paths == (Path("a"), Path("b")) and config.output_root == Path("/o")
    assert config.flush_delay == 1.0 and isinstance(config.flush_delay, float) and config.data_interval == ("s", "e")
    assert RunConfig(model_paths="one").model_paths == (Path("one"),)


@pytest.mark.parametrize(
    ("environ", "error", "words"),
    [
        ({"AMML_DATABASES": "{oops"}, PipelineError, "AMML_DATABASES is not JSON"),
        ({"AMML_DATABASES": "[1]"}, PipelineError, "AMML_DATABASES must be a JSON object"),
        ({"AMML_WEBHOOKS": "{oops"}, PipelineError, "AMML_WEBHOOKS is not JSON"),
        ({"AMML_WEBHOOKS": '{"ops": "file:///etc/passwd"}'}, PipelineError, "the webhook `ops` is not an http"),
        ({"AMML_TRAIN_MEMORY_LIMIT": "lots"}, AmmlModelError, "AMML_TRAIN_MEMORY_LIMIT='lots' is not a memory size"),
        ({"AMML_REGISTRY_CONN_ID": "amml_registry"}, RegistryError, "names an Airflow connection"),
        ({"AMML_ARTIFACT_CONN_ID": "webhdfs_default"}, RegistryError, "names an Airflow connection"),
    ],
)
def test_bad_environment_is_refused_with_a_hint(environ, error, words):
    with pytest.raises(error, match=words) as info:
        RunConfig.from_environment(environ)
    assert info.value.hint or "must be a JSON object" in words


def test_a_connection_id_is_fine_beside_its_url_or_an_override():
    """Today's precedence: AMML_REGISTRY_URL wins over AMML_REGISTRY_CONN_ID; the edge resolves the id."""
    both = {"AMML_REGISTRY_CONN_ID": "c", "AMML_REGISTRY_URL": "sqlite:////r.db"}
    assert RunConfig.from_environment(both).registry_url == "sqlite:////r.db"
    resolved = RunConfig.from_environment({"AMML_ARTIFACT_CONN_ID": "c"}, artifact_location="webhdfs://nn/x")
    assert resolved.artifact_location == "webhdfs://nn/x"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"batch_rows": 0}, "batch_rows must be a whole number of records ≥ 1, got 0"),
        ({"batch_rows": True}, "batch_rows must be a whole number of records ≥ 1, got True"),
        ({"flush_delay": -1}, "flush_delay must be a number of seconds ≥ 0, got -1"),
    ],
)
def test_bad_batching_is_refused(fields, words):
    with pytest.raises(PipelineError, match=words):
        RunConfig(**fields)
    with pytest.raises(PipelineError, match=words):
        dataclasses.replace(RunConfig(), **fields)  # every way of making one checks


def test_the_repr_hides_passwords():
    config = RunConfig(db_url="postgresql://amml:hunter2@db/amml", databases={"w": "postgresql://u:pw@h/w"})
    assert "hunter2" not in repr(config) and ":pw@" not in repr(config)
    assert "postgresql://amml:***@db/amml" in repr(config) and config.db_url.endswith("hunter2@db/amml")


def test_the_program_fills_only_what_the_configuration_leaves_unset():
    program = compile_source(
        "dag d { batch_rows = 500; flush_delay = 0.2 }\nnormalsource count=1 | print\n", "d.amml", cache=ProgramCache()
    )
    merged = program_config(program, RunConfig(lineage=Lineage(run_id="r")))
    assert (merged.batch_rows, merged.flush_delay) == (500, 0.2)
    assert merged.lineage == Lineage(run_id="r", source_hash=program.source_hash)
    flagged = program_config(program, RunConfig(batch_rows=7))  # `amml run --batch-rows 7` wins
    assert (flagged.batch_rows, flagged.flush_delay) == (7, 0.2)
    plain = compile_source("normalsource count=1 | print\n", "p.amml", cache=ProgramCache())
    assert program_config(plain, RunConfig()).batch_rows is None  # the executor's default then


def test_the_deployments_model_folders_are_searched_after_the_runs_own():
    environ = {"AMML_MODEL_PATH": "/shared/models"}
    config = RunConfig.from_environment(environ, model_paths=("/dags/models",))
    assert config.model_paths == (Path("/dags/models"), Path("/shared/models"))
    assert RunConfig.from_environment({}, model_paths=("/dags/models",)).model_paths == (Path("/dags/models"),)


@pytest.mark.parametrize("raw", ["two", "0", "-1", "1.5"])
def test_a_process_cap_that_is_not_a_whole_number_above_zero_is_refused_with_a_hint(raw):
    with pytest.raises(PipelineError, match=r"AMML_MAX_PROCESSES|max_processes") as caught:
        RunConfig.from_environment({"AMML_MAX_PROCESSES": raw})
    assert caught.value.hint


@pytest.mark.parametrize("item", [("series", True), (1, "a"), ("series", ["a"])])
def test_an_item_is_a_variable_name_and_a_string_or_number(item):
    with pytest.raises(PipelineError, match="item"):
        RunConfig(item=item)


def test_an_item_survives_the_trip_to_a_component_process():
    config = RunConfig(item=["series", "nab/realKnownCause/nyc_taxi"], max_processes=2)
    assert config.item == ("series", "nab/realKnownCause/nyc_taxi")
    assert pickle.loads(pickle.dumps(config)) == config
