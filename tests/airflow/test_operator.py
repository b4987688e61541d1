"""AmmlPipelineOperator.execute, in this process: what it hands to the executor (the runs themselves are
tested with dag.test() and a real scheduler in the other modules of this folder)."""

import pendulum

from airflow_amml import run
from operators.pipeline import AmmlPipelineOperator


def test_the_dag_blocks_batching_and_the_data_interval_reach_the_executor(tmp_path, monkeypatch):
    src = tmp_path / "p.amml"
    src.write_text("dag p { batch_rows = 500; flush_delay = 0.2 }\nnormalsource col='v', count=1000 | print limit=0\n")
    seen = {}
    real = run.run_pipeline

    def spying(pipeline, **kwargs):
        seen["config"] = kwargs["config"]
        return real(pipeline, **kwargs)

    monkeypatch.setattr(run, "run_pipeline", spying)
    task = AmmlPipelineOperator(task_id="main", amml_file=str(src))
    start = pendulum.datetime(2017, 1, 1, tz="UTC")
    result = task.execute({"data_interval_start": start, "data_interval_end": start.add(days=1), "run_id": "r"})
    config = seen["config"]
    assert config.batch_rows == 500 and config.flush_delay == 0.2
    assert config.data_interval == ("2017-01-01T00:00:00+00:00", "2017-01-02T00:00:00+00:00")
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


def test_on_alert_notifiers_get_each_alert_of_the_run_also_when_the_run_fails(tmp_path):
    """A real Airflow BaseNotifier with a templated field, handed to the operator: called once per alert the
    task recorded, with `alert` in its context — and still called when a later component fails the run."""
    import pytest
    from airflow.sdk.bases.notifier import BaseNotifier

    from airflow_amml.runtime.errors import PipelineError

    received = []

    class Collect(BaseNotifier):
        template_fields = ("text",)

        def __init__(self, text):
            super().__init__()
            self.text = text

        def notify(self, context):
            received.append((self.text, context["alert"]["position"]))

    src = tmp_path / "p.amml"
    src.write_text("normalsource col='v', count=10 | derive w = v * 0 + 1 | alert cond=w > 0, cooldown=4\n")
    task = AmmlPipelineOperator(task_id="main", amml_file=str(src), on_alert=Collect("at {{ alert.position }}"))
    task.execute({"run_id": "run-1", "params": {}})
    assert received == [("at 0", 0), ("at 5", 5)]

    received.clear()
    broken = tmp_path / "broken.amml"  # the alert fires early; the run fails at the end of the stream
    broken.write_text(
        "readings = normalsource col='v', count=4000, rate=2000, seed=3\n"
        "readings | alert cond=v > 2.5, cooldown=1000000\n"
        "readings | stats cols=['v'], ops=['mean'] | derive boom = 'x' + v_mean | print\n"
    )
    failing = AmmlPipelineOperator(task_id="main", amml_file=str(broken), on_alert=[Collect("x")])
    with pytest.raises(PipelineError, match="cannot apply"):
        failing.execute({"run_id": "run-2", "params": {}})
    assert len(received) == 1 and received[0][0] == "x"  # the alert recorded before the failure is told
