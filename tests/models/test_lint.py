"""`amml lint` checks model files and the pipelines that reference them, without Airflow, DB or HDFS."""

import shutil
from pathlib import Path

from airflow_amml.cli import main

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_lint_checks_model_files_and_references(tmp_path, capsys):
    shutil.copytree(DAGS / "models", tmp_path / "models")
    (tmp_path / "models" / "broken.yaml").write_text(
        "name: b\nversion: '1'\nmodel:\n  layers:\n    - {type: LTSM, units: 3}\ntraining: {target: OT}\n"
    )
    (tmp_path / "train.amml").write_text('source id="ett" | train_lstm model="ett:0.2" | print\n')
    (tmp_path / "ok.amml").write_text('source id="ett" | train_lstm model="ett:0.1" | print\n')
    assert main(["lint", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "broken.yaml:5:" in err and "LTSM" in err and "`LSTM`" in err
    assert "train.amml:1:19: name error: `train_lstm` uses the model definition 'ett:0.2'" in err
    assert "did you mean `ett:0.1`" in err
    assert "ok.amml" not in err
    shipped = len(list((DAGS / "models").glob("*.yaml")))  # all fine; plus broken.yaml, train.amml, ok.amml
    assert f"{shipped + 3} file(s) checked: {shipped + 1} ok, 2 with errors (2 error(s))" in err
