"""`amml evaluate` end to end: a tiny NAB-layout corpus, a pipeline that flags known records, the real executor.

The corpus: three series of 20 rows a minute apart (probationary period rows 0–2), value 0 except where said:

- ``catA/s1.csv``: window rows 8–11; value 100 at row 8 (its left edge);
- ``catA/s2.csv``: window rows 8–11; value 55 at row 10 (inside), 100 at row 13 (after it);
- ``catB/s3.csv``: no window; value 100 at row 5.

The pipeline scores ``value / 100`` and flags ``value > 60``: flags at s1 row 8, s2 row 13, s3 row 5.
σ(y) = 2/(1 + e^(5y)) − 1 = tanh(−5y/2); σ(−1) = tanh(2.5).
"""

import json
import math

import pandas as pd
import pytest

from airflow_amml.cli import main

TIMES = pd.date_range("2024-01-01", periods=20, freq="min")
PIPELINE = 'source id="nab" | derive anomaly_score = value / 100, anomaly_flag = value > 60 | print\n'
LABELS = {
    "catA/s1.csv": [[str(TIMES[8]), str(TIMES[11])]],
    "catA/s2.csv": [[str(TIMES[8]), str(TIMES[11])]],
    "catB/s3.csv": [],
}
PEAKS = {"catA/s1.csv": {8: 100}, "catA/s2.csv": {10: 55, 13: 100}, "catB/s3.csv": {5: 100}}

IN_WINDOW = math.tanh(1.25) / math.tanh(2.5)  # s2 row 10: −(11 − 10 + 1)/4 = −0.5 → 0.85978
PAST = math.tanh(-5 / 3)  # s2 row 13: (13 − 11)/(4 − 1) = 2/3 past the window → −0.93111 (before weighting)


@pytest.fixture
def corpus(tmp_path):
    data = tmp_path / "nab"
    for key, peaks in PEAKS.items():
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        values = [peaks.get(i, 0) for i in range(20)]
        pd.DataFrame({"timestamp": TIMES.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
            data / key, index=False
        )
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps(LABELS, indent=1))
    pipeline = tmp_path / "spike_detector.amml"
    pipeline.write_text(PIPELINE)
    return pipeline, data, labels


def run(capsys, *args):
    status = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("mode", ["multiprocess", "single"])
def test_known_detections_get_the_hand_computed_nab_score(capsys, corpus, mode):
    pipeline, data, labels = corpus
    status, out, err = run(capsys, pipeline, "--data", data, "--labels", labels, "--json", "--mode", mode)
    assert status == 0, err
    report = json.loads(out)
    # fixed (the flags): s1 +1 (left edge); s2 missed −1 and a false positive 0.11 · σ(2/3); s3 −0.11 (no window
    # before it). Two windows: null −2, perfect 2.
    raw = 1 - 1 + 0.11 * PAST - 0.11
    fixed = report["all"]["nab_fixed"]["standard"]
    assert fixed["raw"] == pytest.approx(raw)
    assert fixed["score"] == pytest.approx(100 * (raw + 2) / 4)  # 44.69
    # low FN: misses cost 2, null −4: 100 · (1 − 2 + 0.11 σ − 0.11 + 4)/6
    low_fn = report["all"]["nab_fixed"]["reward_low_FN_rate"]["score"]
    assert low_fn == pytest.approx(100 * (1 - 2 + 0.11 * PAST - 0.11 + 4) / 6)
    # optimised on the labels: at ≥ 0.55 s2's row 10 is found too (−1 → 0.85978): the best threshold
    optimised = report["all"]["nab_optimised_on_these_labels"]["standard"]
    best = 1 + IN_WINDOW + 0.11 * PAST - 0.11
    assert (optimised["threshold"], optimised["raw"]) == (0.55, pytest.approx(best))
    assert optimised["score"] == pytest.approx(100 * (best + 2) / 4)  # 91.18
    # per category: catA alone (s3's false positive is catB's); catB has no window: no NAB score
    cat_a = report["categories"]["catA"]["nab_fixed"]["standard"]
    assert cat_a["score"] == pytest.approx(100 * (1 - 1 + 0.11 * PAST + 2) / 4)
    assert report["categories"]["catB"]["nab_fixed"]["standard"]["score"] is None
    # events from the flags: 1 of 2 windows, 2 false-positive rows (s2 row 13, s3 row 5)
    event = report["all"]["event"]
    assert (event["detected_windows"], event["false_positive_rows"]) == (1, 2)
    assert (event["precision"], event["recall"]) == (pytest.approx(1 / 3), 0.5)
    assert event["f1"] == pytest.approx(0.4)
    assert report["all"]["mean_time_to_detect"] == {"rows": 0.0, "seconds": 0.0}
    assert report["fixed"] == {"flag_column": "anomaly_flag", "threshold": None}
    assert report["detector"] == "spikeDetector" and set(report["categories"]) == {"catA", "catB"}


def test_without_a_flag_column_the_fixed_threshold_decides(capsys, corpus, tmp_path):
    pipeline, data, labels = corpus
    pipeline.write_text('source id="nab" | derive anomaly_score = value / 100 | print\n')
    status, out, err = run(capsys, pipeline, "--data", data, "--labels", labels, "--json", "--threshold", "0.5")
    assert status == 0, err
    report = json.loads(out)
    # ≥ 0.5 flags s2's row 10 as well: the same detections as the optimised threshold
    assert report["fixed"] == {"flag_column": None, "threshold": 0.5}
    assert report["all"]["nab_fixed"]["standard"]["raw"] == pytest.approx(1 + IN_WINDOW + 0.11 * PAST - 0.11)
    assert report["all"]["event"]["detected_windows"] == 2


def test_the_text_report_says_which_scores_used_the_labels(capsys, corpus):
    pipeline, data, labels = corpus
    status, out, _ = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 0
    assert "optimised on these labels" in out and "fixed: the records' flag `anomaly_flag`" in out
    nab_table, detection_table = out.split("\nDetection by ")
    pooled = [line.split() for line in nab_table.splitlines() if line.startswith("all ")]
    assert pooled[0][1:3] == ["3", "2"]  # series, windows
    assert pooled[0][3] == "91.2" and pooled[0][6] == "44.7"  # standard: optimised, fixed
    (events,) = [line.split() for line in detection_table.splitlines() if line.startswith("all ")]
    assert events[1:6] == ["1/2", "2", "0.333", "0.500", "0.400"]  # found, FP rows, precision, recall, F1


def test_out_writes_nab_result_files(capsys, corpus, tmp_path):
    pipeline, data, labels = corpus
    out_dir = tmp_path / "results"
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels, "--out", out_dir, "--detector", "spike")
    assert status == 0, err
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.csv"))
    assert written == ["catA/spike_s1.csv", "catA/spike_s2.csv", "catB/spike_s3.csv"]
    s2 = pd.read_csv(out_dir / "catA" / "spike_s2.csv")
    assert list(s2.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert list(s2["label"]) == [1 if 8 <= i <= 11 else 0 for i in range(20)]
    assert s2["anomaly_score"][10] == 0.55 and s2["anomaly_score"][13] == 1.0 and s2["anomaly_score"].sum() == 1.55
    assert s2["timestamp"][0] == "2024-01-01 00:00:00"  # as in the series file


def test_a_label_key_leaving_the_data_folder_is_refused_by_name(capsys, corpus, tmp_path):
    pipeline, data, labels = corpus
    (tmp_path / "secret.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    for key in ("../secret.csv", "catA/../../secret.csv", "/etc/passwd.csv", "catA\\s1.csv", "catA/s1.txt"):
        labels.write_text(json.dumps({**LABELS, key: []}))
        status, out, err = run(capsys, pipeline, "--data", data, "--labels", labels)
        assert status == 1 and out == ""
        assert repr(key) in err and "Traceback" not in err, err
        assert f"{labels}:" in err  # the labels file, with the key's line and column


def test_a_linked_category_leading_out_is_refused(capsys, corpus, tmp_path):
    pipeline, data, labels = corpus
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "s9.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    (data / "linked").symlink_to(outside)
    labels.write_text(json.dumps({"linked/s9.csv": []}))
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 1 and "'linked/s9.csv' leads out of the data folder" in err and "Traceback" not in err


def test_a_missing_series_file_is_named(capsys, corpus):
    pipeline, data, labels = corpus
    labels.write_text(json.dumps({**LABELS, "catB/gone.csv": []}))
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 1 and "`catB/gone.csv`" in err and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("labels_text", "expected"),
    [
        ('{"catA/s1.csv": [["2024-01-01 00:08:00"', "not JSON"),
        ('[["2024-01-01 00:08:00", "2024-01-01 00:11:00"]]', "must be a JSON object"),
        ('{"catA/s1.csv": [["yesterday", "today"]]}', "is not a pair of times"),
        ('{"catA/s1.csv": [["2024-01-01 00:11:00", "2024-01-01 00:08:00"]]}', "ends before it starts"),
        ('{"catA/s1.csv": [["2025-01-01 00:00:00", "2025-01-02 00:00:00"]]}', "starts after the last record"),
    ],
)
def test_bad_labels_are_named_with_their_place(capsys, corpus, labels_text, expected):
    pipeline, data, labels = corpus
    labels.write_text(labels_text)
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 1 and expected in err and str(labels) in err and "Traceback" not in err, err


def test_a_pipeline_without_a_source_or_a_score_says_what_evaluate_needs(capsys, corpus):
    pipeline, data, labels = corpus
    pipeline.write_text("normalsource col='value', count=10 | print\n")
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 1 and "reads no `source`" in err and 'source id="nab"' in err
    pipeline.write_text('source id="nab" | derive other = value | print\n')
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels)
    assert status == 1 and "`anomaly_score` or `anomaly_flag`" in err and "'other'" in err, err


def test_a_failing_run_names_the_series(capsys, corpus):
    pipeline, data, labels = corpus
    pipeline.write_text("source id=\"nab\" | derive anomaly_score = value + 'a' | print\n")
    status, _, err = run(capsys, pipeline, "--data", data, "--labels", labels, "--mode", "single")
    assert status == 1 and "while scoring `catA/s1.csv`" in err and "Traceback" not in err, err


def test_the_report_depends_neither_on_batch_rows_nor_on_the_mode(corpus):
    from airflow_amml.detection.evaluate import evaluate
    from airflow_amml.run_config import RunConfig

    pipeline, data, labels = corpus
    whole = evaluate(pipeline, data, labels, mode="single").to_json()
    # 3 records per batch (each tap writes 7 batches of a 20-row series), in component processes
    config = RunConfig.from_environment(batch_rows=3)
    pieces = evaluate(pipeline, data, labels, config=config, mode="multiprocess").to_json()
    assert pieces == whole


def test_evaluation_writes_nothing_its_egresses_would(capsys, corpus, tmp_path):
    # the conftest's output root is tmp_path: a real run of this pipeline would write tmp_path/archive.csv
    pipeline, data, labels = corpus
    pipeline.write_text(
        'source id="nab" | derive anomaly_score = value / 100, anomaly_flag = value > 60 | split a, b\n'
        "a | print\n"
        'b | csv_sink path="archive.csv"\n'
    )
    status, out, err = run(capsys, pipeline, "--data", data, "--labels", labels, "--json")
    assert status == 0, err
    assert not (tmp_path / "archive.csv").exists()
    assert json.loads(out)["all"]["event"]["false_positive_rows"] == 2  # both egresses saw the same records
