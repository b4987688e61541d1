"""AmmlPipelineOperator.execute, in this process: what it hands to the executor (the runs themselves are
tested with dag.test() and a real scheduler in the other modules of this folder)."""

import pendulum

from airflow_amml.runtime import executor
from operators.pipeline import AmmlPipelineOperator


def test_the_dag_blocks_batching_and_the_data_interval_reach_the_executor(tmp_path, monkeypatch):
    src = tmp_path / "p.amml"
    src.write_text("dag p { batch_rows = 500; flush_delay = 0.2 }\nnormalsource col='v', count=1000 | print limit=0\n")
    seen = {}
    real = executor.run_pipeline

    def spying(pipeline, **kwargs):
        seen.update(kwargs["settings"])
        return real(pipeline, **kwargs)

    monkeypatch.setattr(executor, "run_pipeline", spying)
    task = AmmlPipelineOperator(task_id="main", amml_file=str(src))
    start = pendulum.datetime(2017, 1, 1, tz="UTC")
    result = task.execute({"data_interval_start": start, "data_interval_end": start.add(days=1), "run_id": "r"})
    assert seen["batch_rows"] == 500 and seen["flush_delay"] == 0.2
    assert seen["data_interval"] == ("2017-01-01T00:00:00+00:00", "2017-01-02T00:00:00+00:00")
    [sink] = [c for name, c in result["components"].items() if name.endswith(":print")]
    assert sink["records_in"] == 1000


def test_a_sink_cannot_write_into_airflows_dags_folder(tmp_path):
    """Airflow's own setting (here: airflow.cfg's value, not an environment variable) names the dags folder the
    sinks must keep out of, although the output root (the test's folder) contains it."""
    import pytest
    from airflow.sdk import conf

    from airflow_amml.runtime.errors import PipelineError

    dags = tmp_path / "dags"
    dags.mkdir()
    src = dags / "p.amml"
    src.write_text(f"normalsource col='v', count=3 | csv_sink path='{dags / 'evil.csv'}'\n")
    before = conf.get("core", "dags_folder")
    conf.set("core", "dags_folder", str(dags))
    try:
        with pytest.raises(PipelineError, match="dags folder"):
            AmmlPipelineOperator(task_id="main", amml_file=str(src)).execute({"run_id": "r"})
    finally:
        conf.set("core", "dags_folder", before)
    assert not (dags / "evil.csv").exists()
