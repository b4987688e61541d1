"""The shipped detection pipeline, scored by `amml evaluate` on the 28 shipped NAB series: it must keep beating
what the issue names — NAB's HTM (65.8 on these series, threshold optimised on them, NAB's own scorer run on
its published results) and the windowed Gaussian computed in the same run — and its fixed-threshold score
(how a deployment runs it) must stay close to the optimised one (it does not lean on the labels)."""

from pathlib import Path

from airflow_amml.detection.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "airflow_amml" / "data" / "nab"
HTM_ON_THESE_SERIES = 65.8  # research/anomaly-registry-ui-airflow.md: NAB's scorer on HTM's published results


def standard(report, kind):
    return report.to_json()["all"][kind]["standard"]["score"]


def test_the_recommended_pipeline_beats_htm_and_the_windowed_gaussian():
    recommended = evaluate(ROOT / "airflow_amml/detection/pipelines/nab_recommended.amml", DATA,
                           DATA / "combined_windows.json")
    gaussian = evaluate(ROOT / "bench/nab/windowed_gaussian.amml", DATA, DATA / "combined_windows.json")
    best = standard(recommended, "nab_optimised_on_these_labels")
    assert best > HTM_ON_THESE_SERIES
    assert best > standard(gaussian, "nab_optimised_on_these_labels") + 20
    assert standard(recommended, "nab_fixed") > best - 2
    # one alarm per incident: a few false-positive records per window found, not hundreds
    pooled = recommended.to_json()["all"]["event"]
    assert pooled["detected_windows"] >= 50 and pooled["false_positive_rows"] < 4 * pooled["detected_windows"]
