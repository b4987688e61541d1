"""`seasonal_means: {period: P, days: [K, ...]}`: per-record channels of the target's change into the next
record on the same phase of the last K periods — hand-computed on a tiny series, from past records only; the
windows that lack that past are not made; `lstm` streaming in two batches forecasts what one batch does; the
keys are checked at file:line."""

import numpy as np
import pandas as pd
import pytest

from airflow_amml.models import keras_builder as kb
from airflow_amml.models import parse_model_spec
from airflow_amml.models.spec import AmmlModelError

TINY = """\
name: sm
version: "1"
model:
  layers:
    - {type: Dense, units: 1}
training:
  target: OT
  window: 2
  seasonal_means: {period: 3, days: [1, 2]}
  EXTRA
"""

OT = [5.0, 3.0, 8.0, 1.0, 9.0, 2.0, 7.0, 4.0, 6.0, 0.0]
# the change into the next record: OT[i + 1] - OT[i]
CHANGE = [-2.0, 5.0, -7.0, 8.0, -7.0, 5.0, -3.0, 2.0, -6.0]


def tiny(extra=""):
    return parse_model_spec(TINY.replace("EXTRA", extra), "sm.yaml")


def test_the_channels_by_hand():
    # at record s: K = 1 is OT[s + 1 - 3] - OT[s - 3] = CHANGE[s - 3]; K = 2 the mean of CHANGE[s - 3], CHANGE[s - 6]
    channels = kb.seasonal_means(np.array(OT), 3, (1, 2))
    assert channels.shape == (10, 2) and channels.dtype == np.float32
    np.testing.assert_array_equal(channels[3:, 0], [-2, 5, -7, 8, -7, 5, -3])  # CHANGE[0 … 6]
    np.testing.assert_array_equal(channels[6:, 1], [(8 - 2) / 2, (-7 + 5) / 2, (5 - 7) / 2, (-3 + 8) / 2])
    assert np.isnan(channels[:3, 0]).all() and np.isnan(channels[:6, 1]).all()  # no past that far back
    np.testing.assert_array_equal(channels[6:, 0], np.array(CHANGE)[3:7])


def test_only_past_records_are_read():
    before = kb.seasonal_means(np.array(OT), 3, (1, 2))
    changed = np.array(OT)
    changed[7:] += [100.0, -50.0, 3.0]  # records 7 … 9 change
    after = kb.seasonal_means(changed, 3, (1, 2))
    np.testing.assert_array_equal(after[:7], before[:7])  # a record's channels never see itself or later ones
    assert not np.allclose(after[7:], before[7:], equal_nan=True)  # … and later records' do


def test_windows_without_the_past_are_not_made():
    spec = tiny()
    assert spec.training.history == 2 + 3 * 2 and spec.input_shape == (2, 3)
    x, y, last = kb.make_windows(pd.DataFrame({"OT": OT}), spec)
    # 10 records: windows end at records 7 and 8 (the first, ending at history - 1 = 7, needs records 0 … 7)
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(x[0], [[7, 8, 3], [4, -7, -1]])  # records 6 and 7: OT, K = 1, K = 2
    np.testing.assert_array_equal(x[1], [[4, -7, -1], [6, 5, -1]])
    np.testing.assert_array_equal(y, [[6], [0]])
    np.testing.assert_array_equal(last, [4, 6])
    # relative inputs: the OT channel minus its last value; the seasonal means are never made relative
    rel = tiny("inputs: relative\n  predict: delta")
    x, y, _ = kb.make_windows(pd.DataFrame({"OT": OT}), rel)
    np.testing.assert_array_equal(x[0], [[3, 8, 3], [0, -7, -1]])
    np.testing.assert_array_equal(y, [[2], [-6]])
    with pytest.raises(kb.ModelDataError, match=r"needs at least 9 rows \(window 2 \+ the seasonal means' 6"):
        kb.make_windows(pd.DataFrame({"OT": OT[:8]}), spec)


class _Last:
    """A stand-in model whose forecast is the window's last seasonal mean (K = 2): checks the alignment."""

    def predict(self, x, batch_size=None, verbose=0):
        return x[:, -1, 2:3]


def test_predict_forecasts_from_every_record_that_has_its_history():
    spec = tiny()
    forecasts = kb.predict(_Last(), spec, pd.DataFrame({"OT": OT}))
    assert forecasts.shape == (3, 1)  # at records 7, 8 and 9
    np.testing.assert_array_equal(forecasts[:, 0], kb.seasonal_means(np.array(OT), 3, (1, 2))[7:, 1])
    with pytest.raises(kb.ModelDataError, match=r"needs at least 8 rows"):
        kb.predict(_Last(), spec, pd.DataFrame({"OT": OT[:7]}))


def _stream_model():
    spec = parse_model_spec(
        TINY.replace("EXTRA", "features: [OT, HUFL]\n  inputs: relative\n  predict: delta\n  solver: least_squares")
        .replace("window: 2", "window: 4")
        .replace("units: 1}", "units: 1, l2: 0.01}")
        .replace("target: OT", "target: OT\n  loss: mse"),
        "sm.yaml",
    )
    rng = np.random.default_rng(1)
    n = 120
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2017-06-01", periods=n, freq="h"),
            "OT": np.cumsum(rng.standard_normal(n)),
            "HUFL": rng.standard_normal(n),
        }
    )
    model, _ = kb.train(spec, frame.iloc[:80])
    return spec, model, frame.iloc[80:].reset_index(drop=True)


def _serving(spec, model):
    from airflow_amml.components.lstm import LstmPredict

    component = LstmPredict.__new__(LstmPredict)  # opened by hand: the model is not in a registry here
    component.spec, component.model = spec, model
    component.entry = type("Entry", (), {"ref": "sm/1"})()
    component.params = {"origins": "every", "layout": "wide", "output": "prediction"}
    component.tail, component.version_column, component.freq, component.last_attrs = None, None, None, {}
    component.widths = {}  # no prediction intervals asked for
    return component


@pytest.mark.slow
def test_streaming_in_two_batches_forecasts_what_one_batch_does():
    spec, model, frame = _stream_model()
    assert spec.training.history == 4 + 3 * 2
    whole = _serving(spec, model).process(frame)
    assert len(whole) == len(frame) - spec.training.history + 1  # every record that has its history
    serving = _serving(spec, model)
    first = serving.process(frame.iloc[:25])
    second = serving.process(frame.iloc[25:])  # its first records' means read the first batch's tail
    both = pd.concat([first, second])
    assert list(both["date"]) == list(whole["date"])
    np.testing.assert_allclose(both["prediction"].to_numpy(), whole["prediction"].to_numpy(), rtol=1e-6)
    # a first batch shorter than the history forecasts nothing yet, and loses nothing
    serving = _serving(spec, model)
    assert serving.process(frame.iloc[:6]) is None
    rest = serving.process(frame.iloc[6:])
    np.testing.assert_allclose(rest["prediction"].to_numpy(), whole["prediction"].to_numpy(), rtol=1e-6)


def _error(extra: str) -> AmmlModelError:
    text = TINY.replace("  seasonal_means: {period: 3, days: [1, 2]}\n", extra).replace("EXTRA", "")
    with pytest.raises(AmmlModelError) as info:
        parse_model_spec(text, "sm.yaml")
    return info.value


@pytest.mark.parametrize(
    ("given", "column", "words", "hint"),
    [
        ("{period: 1, days: [7]}", 28, "`training.seasonal_means.period` must be ≥ 2", None),
        ("{period: 24, days: []}", 38, "must be a non-empty list", "days: [7, 28]"),
        ("{period: 24, days: 7}", 38, "must be a non-empty list", "days: [7, 28]"),
        ("{period: 24, days: [0]}", 39, "must be ≥ 1", None),
        ("{period: 24, days: [400]}", 39, "must be ≤ 366", None),
        ("{period: 24, days: [28, 7]}", 43, "must increase (each mean once, shortest first); 7 follows 28", "[7, 28]"),
        ("{period: 24, days: [7, 7]}", 42, "must increase", "[7]"),
        ("{period: 24, dayz: [7]}", 32, "unknown seasonal means setting `dayz`", "days"),
        ("{period: 24}", 19, "has no `days`", "days: [7, 28]"),
        ("{period: 10000, days: [2]}", 19, "a forecast would read 20,002 records", "fewer `days`"),
        ("[24, 7]", 19, "must be a mapping", None),
    ],
)
def test_seasonal_means_errors_at_file_line(given, column, words, hint):
    e = _error(f"  seasonal_means: {given}\n")
    assert (e.filename, e.line, e.column) == ("sm.yaml", 9, column)
    assert words in e.message
    if hint is not None:
        assert hint in (e.hint or "")


def test_round_trip_and_input_shape():
    import yaml

    spec = tiny("features: [OT, HUFL]\n  time_features: [hour_of_day]")
    assert spec.input_shape == (2, 2 + 2 + 2)  # the features, the hour's sine and cosine, two seasonal means
    d = spec.to_dict()
    assert d["training"]["seasonal_means"] == {"period": 3, "days": [1, 2]}
    assert parse_model_spec(yaml.safe_dump(d, sort_keys=False)) == spec
    plain = parse_model_spec(TINY.replace("  seasonal_means: {period: 3, days: [1, 2]}\n", "").replace("EXTRA", ""))
    assert plain.training.history == plain.training.window and "seasonal_means" not in plain.to_dict()["training"]


SEASONAL_MODEL = """
name: seas
version: "0.1"
model:
  layers:
    - {type: Dense, units: 1, l2: 0.001}
training:
  solver: least_squares
  loss: mse
  window: 24
  target: OT
  inputs: relative
  predict: delta
  seasonal_means: {period: 24, days: [2, 7]}
"""


@pytest.mark.slow
def test_train_lstm_holds_out_registers_and_ett_predict_serves_with_the_history(tmp_path, ett_path, caplog):
    import tempfile
    from pathlib import Path

    from airflow_amml.registry import ModelRegistry
    from airflow_amml.run_config import RunConfig
    from airflow_amml.runtime.executor import run_pipeline
    from compiler import ProgramCache, compile_source

    models = tmp_path / "models"
    models.mkdir()
    (models / "seas.yaml").write_text(SEASONAL_MODEL)
    config = RunConfig.from_environment(model_paths=[models], runs_dir=tmp_path / "runs", output_root=tmp_path)

    def run(text):
        run_pipeline(compile_source(text, "seas.amml", cache=ProgramCache()).pipelines[0], config=config, mode="single")

    run("source id='ett', limit=1500 | minmax_scaler | train_lstm model='seas:0.1', holdout=300 | print")
    registry = ModelRegistry.from_config()
    entry = registry.resolve("seas@champion")
    spec = parse_model_spec(SEASONAL_MODEL, "seas.yaml")
    assert spec.training.history == 24 + 24 * 7 and entry.params["history"] == 192
    assert entry.params["seasonal_means"] == "period 24, days 2,7"
    ett = pd.read_csv(ett_path)
    low, high = entry.scaler["columns"]["OT"]
    scaled = ett[["date", "OT"]].assign(OT=(ett["OT"] - low) / (high - low))
    with tempfile.TemporaryDirectory() as tmp:
        _, path = registry.download(entry.ref, Path(tmp))
        model = kb.load_model(path, spec)
    # every record of the hold-out (the last 300) is a label: the first forecast reads the last 192 trained on
    records = scaled.iloc[1200 - 192 : 1500].reset_index(drop=True)
    forecasts = kb.predict(model, spec, records)[:-1, 0]  # made at records 1199 … 1498
    assert len(forecasts) == 300 == entry.metrics["holdout_records"]
    errors = forecasts - records["OT"].to_numpy()[192:]
    assert entry.metrics["holdout_mse_scaled"] == pytest.approx(float(np.mean(errors**2)), rel=1e-6)

    # a day's predictions with warmup = history - 1: one per hour, each from its 192 hours before
    out = tmp_path / "day.csv"
    run(
        "source id='ett', start='2016-08-10', end='2016-08-11', warmup=191 | minmax_scaler model='seas' "
        f"| lstm model='seas' | csv_sink path='{out}'"
    )
    day = pd.read_csv(out)
    first = int(ett.index[ett["date"] == "2016-08-10 00:00:00"][0])
    assert len(day) == 24 and day["date"].iloc[0] == "2016-08-10 00:00:00"
    expected = kb.predict(model, spec, scaled.iloc[first - 191 : first + 24])[:, 0]
    np.testing.assert_allclose(day["prediction"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    # `warmup_for=` reads the history the version's definition needs: the same day, the same forecasts
    served = tmp_path / "served.csv"
    run(
        "source id='ett', start='2016-08-10', end='2016-08-11', warmup_for='seas@champion' "
        f"| minmax_scaler model='seas' | lstm model='seas' | csv_sink path='{served}'"
    )
    pd.testing.assert_frame_equal(pd.read_csv(served), day)
    # `warmup=` adds to it (ett_watch's shape: a residual detector scores the forecast made the hour before
    # each one, so the hour before the day is read and forecast too, and every hour of the day is scored)
    watched = tmp_path / "watched.csv"
    run(
        "source id='ett', start='2016-08-10', end='2016-08-11', warmup_for='seas@champion', warmup=1 "
        "| minmax_scaler model='seas' | lstm model='seas' "
        f"| residual_detector col='OT', pred='prediction', model='seas' | csv_sink path='{watched}'"
    )
    scored = pd.read_csv(watched)
    assert list(scored["date"].iloc[:2]) == ["2016-08-09 23:00:00", "2016-08-10 00:00:00"] and len(scored) == 25
    np.testing.assert_allclose(scored["prediction"].iloc[1:], day["prediction"], rtol=1e-6)
    from airflow_amml.runtime.errors import PipelineError

    with pytest.raises(PipelineError, match=r"source warmup_for='nope@champion'.*nope") as missing:
        run("source id='ett', start='2016-08-10', end='2016-08-11', warmup_for='nope@champion' | print")
    assert missing.value.hint, "says what to do"

    # without the warm-up the day is shorter than one forecast's history: nothing is written, and the log says why
    short = tmp_path / "short.csv"
    with caplog.at_level("WARNING", logger="airflow_amml.components.lstm"):
        run(
            "source id='ett', start='2016-08-10', end='2016-08-11' | minmax_scaler model='seas' "
            f"| lstm model='seas' | csv_sink path='{short}'"
        )
    assert not short.exists() or not short.read_text().strip(), "no forecast rows"
    assert "the stream had 24 records; seas:0.1 reads 192 per forecast" in caplog.text
    assert "warmup=191" in caplog.text


def test_infinite_values_are_refused_by_name():
    frame = pd.DataFrame({"OT": [1.0, 2.0, np.inf, 3.0] * 5})
    with pytest.raises(kb.ModelDataError, match="column OT has 5 infinite value"):
        kb.make_windows(frame, tiny())
