"""The model language: every error names file:line:column, the offending key or value and the choices."""

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from airflow_amml.models import (
    AmmlModelError,
    EarlyStoppingSpec,
    ModelSpec,
    find_model_files,
    load_model_spec,
    parse_model_spec,
)
from compiler.errors import AmmlCompileErrors, AmmlError
from tests.conftest import ROOT

BASE = """\
name: ett
version: "0.1"
description: test model
model:
  layers:
    - type: LSTM
      units: 32
      activation: tanh
    - type: Dense
      units: 1
training:
  loss: mae
  optimizer: {name: adam, learning_rate: 0.001}
  epochs: 20
  batch_size: 32
  validation_split: 0.1
  window: 24
  horizon: 1
  target: OT
  features: [HUFL, OT]
  predict: level
  seed: 7
"""


def edit(old, new, text=BASE):
    assert old in text, old
    return text.replace(old, new, 1)


def error(text) -> AmmlModelError:
    with pytest.raises(AmmlModelError) as info:
        parse_model_spec(text, "m.yaml")
    return info.value


def check(e, line, column, *words, hint=None):
    assert isinstance(e, AmmlModelError) and isinstance(e, AmmlError)
    assert (e.line, e.column) == (line, column), str(e)
    rendered = str(e)
    assert rendered.startswith(f"m.yaml:{line}:{column}: model error: "), rendered
    for w in words:
        assert w in e.message, (w, e.message)
    if hint is not None:
        assert e.hint is not None and hint in e.hint, (hint, e.hint)
    assert "^" in rendered  # the offending line with a caret


# ---- the happy path ----------------------------------------------------------------------------------


def test_base_spec():
    spec = parse_model_spec(BASE, "m.yaml")
    assert isinstance(spec, ModelSpec)
    assert spec.ref == "ett:0.1"
    assert [layer.type for layer in spec.layers] == ["LSTM", "Dense"]
    assert spec.layers[0].kwargs == {"units": 32, "activation": "tanh"}
    assert (spec.layers[0].line, spec.layers[0].column) == (6, 13)
    t = spec.training
    assert (t.loss, t.optimizer, t.learning_rate, t.epochs, t.batch_size) == ("mae", "adam", 0.001, 20, 32)
    assert (t.window, t.horizon, t.target, t.features, t.predict, t.seed) == (24, 1, "OT", ("HUFL", "OT"), "level", 7)
    assert t.early_stopping is None and t.input_shape == (24, 2)
    assert spec.source == BASE and len(spec.sha256) == 64
    with pytest.raises(AttributeError):
        spec.name = "other"  # frozen


def test_defaults_and_normalised_names():
    spec = parse_model_spec(
        textwrap.dedent("""\
            name: tiny
            version: 1
            model:
              layers: [{type: gru, units: 4}, {type: DENSE, units: 2, activation: ReLU}]
            training: {target: OT, horizon: 2, optimizer: RMSprop, loss: mean_squared_error,
                       early_stopping: true}
            """),
        "m.yaml",
    )
    assert spec.version == "1" and spec.description == ""
    assert [layer.type for layer in spec.layers] == ["GRU", "Dense"]
    assert spec.layers[1].get("activation") == "relu"
    t = spec.training
    assert t.features == ("OT",) and t.optimizer == "rmsprop" and t.loss == "mse" and t.learning_rate is None
    assert t.early_stopping == EarlyStoppingSpec(
        patience=3, monitor="val_loss", min_delta=0.0, restore_best_weights=True
    )
    assert (t.window, t.epochs, t.validation_split, t.predict, t.shuffle, t.seed) == (24, 10, 0.1, "level", True, 0)


@pytest.mark.parametrize(
    ("written", "stored"),
    [('"0.1"', "0.1"), ("0.1", "0.1"), ("0.10", "0.10"), ("2", "2"), ("1.0", "1.0"), ("v2-rc1", "v2-rc1")],
)
def test_version_is_kept_as_written(written, stored):
    assert parse_model_spec(edit('"0.1"', written)).version == stored


def test_round_trip_through_to_dict_is_stable():
    spec = parse_model_spec(
        edit(
            "  seed: 7\n",
            "  seed: 7\n  early_stopping: {patience: 2, monitor: loss}\n",
            edit(
                "      activation: tanh\n",
                "      activation: tanh\n      dropout: 0.1\n      return_sequences: true\n"
                "    - type: Dropout\n      rate: 0.2\n    - type: GRU\n      units: 8\n",
            ),
        ),
        "m.yaml",
    )
    d = spec.to_dict()
    again = parse_model_spec(yaml.safe_dump(d, sort_keys=False), "dumped.yaml")
    assert again == spec  # equality is the definition, not the text
    assert again.to_dict() == d
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(d, sort_keys=True)
    assert again.sha256 != spec.sha256  # the hash is of the text
    assert d["model"]["layers"][0] == {
        "type": "LSTM",
        "units": 32,
        "activation": "tanh",
        "dropout": 0.1,
        "return_sequences": True,
    }
    assert d["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.001}
    assert d["training"]["early_stopping"] == {
        "patience": 2,
        "monitor": "loss",
        "min_delta": 0.0,
        "restore_best_weights": True,
    }


def test_shipped_model_files():
    folder = ROOT / "dags" / "models"
    ett = load_model_spec(folder / "ett-0.1.yaml")
    assert ett.ref == "ett:0.1"
    assert [(layer.type, layer.get("units"), layer.get("activation")) for layer in ett.layers] == [
        ("LSTM", 32, "tanh"),
        ("Dense", 1, None),
    ]
    t = ett.training
    assert (t.loss, t.optimizer, t.epochs, t.target, t.window, t.predict) == ("mae", "adam", 20, "OT", 24, "level")
    assert t.features == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
    delta = load_model_spec(folder / "ett-delta-0.1.yaml")
    assert delta.ref == "ett_delta:0.1" and delta.training.predict == "delta"
    assert {p.name for p in find_model_files(folder)} >= {"ett-0.1.yaml", "ett-delta-0.1.yaml", "ett-step-0.2.yaml"}
    # the one-step linear model, solved by least squares: 168 hours of OT, then sin/cos of 1 and 2 times each
    # record's hour-of-day angle, then the seasonal means of the hourly change over the last 7 and 28 days
    step_spec = load_model_spec(folder / "ett-step-0.2.yaml")
    step = step_spec.training
    assert step_spec.ref == "ett_step:0.2" and step.solver == "least_squares" and step.loss == "mse"
    assert (step.horizon, step.window, step.features, step.predict) == (1, 168, ("OT",), "delta")
    assert (step.time_features, step.time_harmonics) == (("hour_of_day",), 2)
    assert (step.seasonal_period, step.seasonal_days) == (24, (7, 28))
    assert step.input_shape == (168, 1 + 2 * 2 + 2) and step.history == 168 + 24 * 28


def test_find_model_files_skips_other_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(BASE)
    (tmp_path / "broken.yaml").write_text("model:\n  layers: [\ntraining:\n  target: OT\n")  # listed: lint reports it
    (tmp_path / "compose.yaml").write_text("services:\n  db: {image: postgres}\n")
    (tmp_path / "list.yaml").write_text("- model\n- training\n")
    (tmp_path / "only_model.yaml").write_text("model: {layers: []}\n")
    (tmp_path / "notes.txt").write_text(BASE)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.yaml").write_text(BASE)
    assert [p.relative_to(tmp_path).as_posix() for p in find_model_files(tmp_path)] == [
        "a.yaml",
        "broken.yaml",
        "sub/b.yml",
    ]
    assert find_model_files(tmp_path / "missing") == []


def test_spec_imports_no_tensorflow_and_builder_imports_it_lazily():
    code = (
        "import sys; import airflow_amml.models.spec, airflow_amml.models; "
        "assert not {'tensorflow', 'keras', 'numpy'} & set(sys.modules), sorted(sys.modules); "
        "import airflow_amml.models.keras_builder; "
        "assert not {'tensorflow', 'keras'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ---- errors ------------------------------------------------------------------------------------------


def test_unknown_layer_type_with_did_you_mean():
    e = error(edit("type: LSTM", "type: LTSM"))
    check(
        e, 6, 13, "unknown layer type `LTSM`", "`Dense`, `Dropout`, `GRU`, `Input`, `LSTM`", hint="did you mean `LSTM`?"
    )


def test_unknown_layer_argument_with_did_you_mean():
    e = error(edit("units: 32", "unit: 32"))  # the missing `units` is not reported twice
    check(
        e,
        7,
        7,
        "`LSTM` layer (layer 1) has no argument `unit`",
        "`units`",
        "`return_sequences`",
        hint="did you mean `units`?",
    )


def test_unknown_training_key_is_an_error_not_ignored():
    e = error(edit("epochs: 20", "epoch: 20"))
    check(e, 14, 3, "unknown training key `epoch`", "`epochs`", "`window`", hint="did you mean `epochs`?")


def test_unknown_top_level_and_model_keys():
    check(
        error(edit("description:", "descripton:")),
        3,
        1,
        "unknown top-level key `descripton`",
        hint="did you mean `description`?",
    )
    check(error(edit("  layers:", "  layer:")), 5, 3, "unknown key `model.layer`", hint="did you mean `layers`?")


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words", "hint"),
    [
        (
            "units: 32",
            "units: '32'",
            7,
            14,
            ["`units` of layer 1 (`LSTM`) must be an integer", "string '32'"],
            "remove the quotes",
        ),
        ("units: 32", "units: 32.0", 7, 14, ["must be an integer", "32.0"], "write 32"),
        ("units: 32", "units: true", 7, 14, ["must be an integer", "boolean"], None),
        ("epochs: 20", "epochs: [20]", 14, 11, ["`training.epochs` must be an integer", "a list"], None),
        ("validation_split: 0.1", "validation_split: high", 16, 21, ["must be a number", "'high'"], None),
        ("activation: tanh", "activation: 3", 8, 19, ["`activation` of layer 1 (`LSTM`) must be a string"], None),
        ("features: [HUFL, OT]", "features: OT", 20, 13, ["must be a list of column names"], "[OT]"),
        ('version: "0.1"', "version: [1]", 2, 10, ["`version` must be a string"], 'quote it: version: "0.1"'),
        ('version: "0.1"', "version: yes", 2, 10, ["`version` must be a string", "boolean"], "quote it"),
    ],
)
def test_wrong_types(old, new, line, column, words, hint):
    check(error(edit(old, new)), line, column, *words, hint=hint)


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words"),
    [
        ("units: 32", "units: 0", 7, 14, ["`units` of layer 1 (`LSTM`) must be ≥ 1; got 0"]),
        ("units: 1\n", "units: -1\n", 10, 14, ["must be ≥ 1; got -1"]),
        ("activation: tanh", "dropout: 1", 8, 16, ["`dropout` of layer 1 (`LSTM`) must be in [0, 1); got 1"]),
        ("activation: tanh", "recurrent_dropout: -0.1", 8, 26, ["must be in [0, 1); got -0.1"]),
        ("validation_split: 0.1", "validation_split: 1.0", 16, 21, ["`training.validation_split` must be in [0, 1)"]),
        ("epochs: 20", "epochs: 0", 14, 11, ["`training.epochs` must be ≥ 1; got 0"]),
        ("window: 24", "window: 0", 17, 11, ["`training.window` must be ≥ 1; got 0"]),
        ("learning_rate: 0.001", "learning_rate: 0", 13, 42, ["`training.optimizer.learning_rate` must be > 0"]),
    ],
)
def test_out_of_range(old, new, line, column, words):
    check(error(edit(old, new)), line, column, *words)


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words", "hint"),
    [
        (
            "predict: level",
            "predict: levels",
            21,
            12,
            ["unknown prediction mode `levels`", "`delta`, `level`"],
            "did you mean `level`?",
        ),
        ("activation: tanh", "activation: rleu", 8, 19, ["unknown activation `rleu`", "`tanh`"], "`relu`"),
        ("loss: mae", "loss: mea", 12, 9, ["unknown loss `mea`", "`huber`, `mae`, `mape`, `mse`"], "`mae`"),
        (
            "name: adam",
            "name: adma",
            13,
            21,
            ["unknown optimizer `adma`", "`adagrad`, `adam`, `adamw`, `rmsprop`, `sgd`"],
            "did you mean `adam`",
        ),
        (
            "optimizer: {name: adam, learning_rate: 0.001}",
            "optimizer: nadam",
            13,
            14,
            ["unknown optimizer `nadam`"],
            "`adam`",
        ),
        ("learning_rate: 0.001", "lr: 0.001", 13, 27, ["unknown optimizer setting `lr`", "`learning_rate`"], None),
    ],
)
def test_unknown_choices(old, new, line, column, words, hint):
    check(error(edit(old, new)), line, column, *words, hint=hint)


def test_relative_inputs_need_delta_predictions():
    e = error(edit("  seed: 7\n", "  seed: 7\n  inputs: relative\n"))
    check(e, 23, 11, "`inputs: relative`", "cannot forecast a level", hint="predict: delta")
    ok = parse_model_spec(
        edit("predict: level", "predict: delta", edit("  seed: 7\n", "  seed: 7\n  inputs: relative\n"))
    )
    assert (ok.training.inputs, ok.training.predict) == ("relative", "delta")
    assert ok.to_dict()["training"]["inputs"] == "relative"
    check(
        error(edit("  seed: 7\n", "  seed: 7\n  inputs: diff\n")),
        23,
        11,
        "unknown input mode `diff`",
        "`level`, `relative`",
    )


def test_missing_target():
    check(error(edit("  target: OT\n", "")), 11, 1, "`training` has no `target`", hint="target: OT")
    check(error(edit("  target: OT\n", "  target:\n")), 19, 10, "`target` is empty")


def test_missing_required_keys():
    check(error(edit("name: ett\n", "")), 1, 1, "the model file has no `name`", hint="name: ett")
    check(error(edit('version: "0.1"\n', "")), 1, 1, "the model file has no `version`", hint='version: "0.1"')
    empty_layers = BASE[: BASE.index("  layers:")] + "  layers: []\n" + BASE[BASE.index("training:") :]
    check(error(empty_layers), 5, 11, "`model.layers` is empty")
    check(error(edit("layers: []", "layers: 3", empty_layers)), 5, 11, "`model.layers` must be a list of layers")


def test_missing_model_and_training():
    text = 'name: ett\nversion: "0.1"\n'
    with pytest.raises(AmmlCompileErrors) as info:
        parse_model_spec(text, "m.yaml")
    messages = [e.message for e in info.value.errors]
    assert any("has no `training`" in m for m in messages)
    assert any("has no `model`" in m for m in messages)


def test_missing_layer_argument():
    e = error(edit("    - type: Dense\n", "    - type: Dropout\n    - type: Dense\n"))
    check(e, 9, 13, "`Dropout` layer (layer 2) needs `rate`", hint="rate:")


def test_stacked_recurrent_layer_needs_return_sequences():
    text = edit("    - type: Dense\n", "    - type: GRU\n      units: 8\n    - type: Dense\n")
    e = error(text)
    check(
        e,
        6,
        13,
        "layer 1 (`LSTM`) feeds another recurrent layer (layer 2, `GRU`)",
        "returns only its last step",
        hint="add `return_sequences: true` to layer 1",
    )
    # written `false` explicitly: the error points at that value
    e = error(edit("      activation: tanh\n", "      activation: tanh\n      return_sequences: false\n", text))
    check(e, 9, 25, "feeds another recurrent layer", hint="return_sequences: true")
    # fixed, with a Dropout in between
    ok = edit(
        "      activation: tanh\n",
        "      activation: tanh\n      return_sequences: true\n    - type: Dropout\n      rate: 0.2\n",
        text,
    )
    assert [layer.type for layer in parse_model_spec(ok).layers] == ["LSTM", "Dropout", "GRU", "Dense"]


def test_last_recurrent_layer_must_not_return_sequences():
    e = error(edit("      activation: tanh\n", "      activation: tanh\n      return_sequences: true\n"))
    check(e, 9, 25, "last recurrent layer but returns the whole sequence", hint="remove `return_sequences: true`")


def test_horizon_must_match_dense_units():
    e = error(edit("horizon: 1", "horizon: 3"))
    check(e, 10, 14, "the last layer outputs 1 value(s)", "`training.horizon` is 3", hint="write `units: 3`")
    assert parse_model_spec(edit("units: 1\n", "units: 3\n", edit("horizon: 1", "horizon: 3"))).training.horizon == 3


def test_last_layer_must_be_dense():
    e = error(edit("    - type: Dense\n      units: 1\n", "    - type: Dropout\n      rate: 0.1\n"))
    check(e, 9, 13, "the last layer must be `Dense`", "got `Dropout`", hint="{type: Dense, units: 1}")


def test_input_layer():
    with_input = edit("    - type: LSTM\n", "    - type: Input\n      shape: [24, 2]\n    - type: LSTM\n")
    assert [layer.type for layer in parse_model_spec(with_input).layers] == ["Input", "LSTM", "Dense"]
    check(
        error(edit("shape: [24, 2]", "shape: [12, 2]", with_input)),
        7,
        14,
        "`shape` of the Input layer is [12, 2]",
        "[24, 2]",
        hint="omit `shape`",
    )
    check(error(edit("shape: [24, 2]", "shape: 24", with_input)), 7, 14, "must be a list of two integers")
    late = edit("    - type: Dense\n", "    - type: Input\n    - type: Dense\n")
    check(error(late), 9, 13, "an `Input` layer must be the first layer")


def test_early_stopping_needs_validation_data():
    text = edit(
        "validation_split: 0.1",
        "validation_split: 0",
        edit("  seed: 7\n", "  seed: 7\n  early_stopping:\n    patience: 2\n    monitor: val_loss\n"),
    )
    check(error(text), 25, 14, "monitors `val_loss`", "validation_split` is 0", hint="monitor: loss")
    ok = parse_model_spec(edit("monitor: val_loss", "monitor: loss", text))
    assert ok.training.early_stopping.monitor == "loss"
    check(
        error(edit("monitor: val_loss", "monitor: val_los", text)), 25, 14, "unknown value `val_los`", hint="`val_loss`"
    )
    check(error(edit("patience: 2", "patience: -1", text)), 24, 15, "`training.early_stopping.patience` must be ≥ 0")


def test_yaml_syntax_error_is_located():
    e = error(edit("units: 32", "units: [32"))
    assert e.line == 8 and e.column == 17 and "invalid YAML" in e.message
    e = error(edit("  loss: mae", "\tloss: mae"))
    assert e.line == 12 and "invalid YAML" in e.message


def test_duplicate_keys_are_errors():
    check(error(edit("units: 32\n", "units: 32\n      units: 16\n")), 8, 7, "duplicate key `units`", "line 7")


def test_not_a_mapping_and_empty():
    check(error("- a\n- b\n"), 1, 1, "the model file must be a mapping")
    e = error("# nothing\n")
    assert e.line is None and "empty" in e.message
    check(error(edit("    - type: LSTM\n", "    - LSTM\n    - type: LSTM\n")), 6, 7, "layer 1 must be a mapping")
    check(error(edit("    - type: LSTM\n", "    - units: 3\n    - type: LSTM\n")), 6, 7, "layer 1 has no `type`")


def test_yaml_merge_keys_and_anchors():
    text = edit(
        "    - type: LSTM\n      units: 32\n      activation: tanh\n",
        "    - &rnn {type: LSTM, units: 16, activation: tanh, return_sequences: true}\n"
        "    - {<<: *rnn, units: 8, return_sequences: false}\n",
    )
    spec = parse_model_spec(text)
    assert [layer.kwargs for layer in spec.layers[:2]] == [
        {"units": 16, "activation": "tanh", "return_sequences": True},
        {"units": 8, "activation": "tanh", "return_sequences": False},
    ]
    check(error(edit("units: 8", "units: 8, units: 4", text)), 7, 28, "duplicate key `units`")


def test_bad_names():
    check(error(edit("name: ett", "name: ett:0.1")), 1, 7, "not a valid model name", hint="`:`")
    check(error(edit('version: "0.1"', 'version: "0 1"')), 2, 10, "not a valid version")


def test_several_errors_are_reported_together_in_order():
    text = edit("epochs: 20", "epoch: 20", edit("units: 32", "units: 0", edit("type: Dense", "type: Dens")))
    with pytest.raises(AmmlCompileErrors) as info:
        parse_model_spec(text, "m.yaml")
    errors = info.value.errors
    assert [(e.line, e.column) for e in errors] == [(7, 14), (9, 13), (14, 3)]
    assert all(isinstance(e, AmmlModelError) for e in errors)
    assert "did you mean `Dense`?" in str(info.value)


def test_load_model_spec_unreadable(tmp_path):
    with pytest.raises(AmmlModelError, match="cannot read"):
        load_model_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "m.yaml"
    bad.write_text(edit("epochs: 20", "epoch: 20"))
    with pytest.raises(AmmlModelError) as info:
        load_model_spec(bad)
    assert str(info.value).startswith(f"{bad}:14:3: model error: unknown training key `epoch`")


# ---- forecasting: schedules, L2, time features, decomposition, per-channel heads -------------------------

FORECAST = """\
name: f
version: "1"
model:
  heads: per_channel
  layers:
    - {type: Dense, units: 24, l2: 0.0001}
training:
  target: OT
  window: 96
  horizon: 24
  inputs: relative
  predict: delta
  optimizer: {name: adam, learning_rate: 0.01}
  lr_schedule: {type: cosine, min_learning_rate: 0.0001}
  time_features: [hour_of_day, day_of_week]
  time_column: date
  decomposition: {moving_average: 25}
"""


def forecast_error(old, new):
    return error(edit(old, new, FORECAST))


def test_forecasting_keys():
    from airflow_amml.models.budget import layer_parameters
    from airflow_amml.models.spec import ScheduleSpec

    spec = parse_model_spec(FORECAST, "m.yaml")
    t = spec.training
    assert spec.heads == "per_channel"
    assert spec.layers[0].kwargs == {"units": 24, "l2": 0.0001}
    assert t.lr_schedule == ScheduleSpec(type="cosine", min_learning_rate=0.0001)
    assert (t.time_features, t.time_column, t.moving_average) == (("hour_of_day", "day_of_week"), "date", 25)
    # OT's seasonal part and trend, then sine and cosine of the hour and of the weekday
    assert t.input_shape == (96, 2 + 4)
    # one Dense head per channel, each on its own 96 values: 6 × (96 × 24 + 24)
    assert layer_parameters(spec) == [6 * (96 * 24 + 24)]
    d = spec.to_dict()
    assert d["model"]["heads"] == "per_channel"
    assert d["training"]["lr_schedule"] == {"type": "cosine", "min_learning_rate": 0.0001}
    assert d["training"]["decomposition"] == {"moving_average": 25}
    again = parse_model_spec(yaml.safe_dump(d, sort_keys=False), "dumped.yaml")
    assert again == spec and again.to_dict() == d
    # the defaults of the older files are unchanged, and their dict gains no keys
    base = parse_model_spec(BASE)
    assert base.heads == "shared" and base.training.lr_schedule is None and base.training.time_features == ()
    assert "lr_schedule" not in base.to_dict()["training"] and "heads" not in base.to_dict()["model"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{type: step, every: 5, factor: 0.1}", {"type": "step", "every": 5, "factor": 0.1}),
        ("{type: STEP}", {"type": "step", "every": 10, "factor": 0.5}),
        ("{type: cosine, epochs: 40}", {"type": "cosine", "epochs": 40, "min_learning_rate": 0.0}),
        (
            "{type: plateau, patience: 2, monitor: loss}",
            {"type": "plateau", "patience": 2, "factor": 0.5, "min_learning_rate": 0.0, "monitor": "loss"},
        ),
    ],
)
def test_schedules(text, expected):
    spec = parse_model_spec(edit("{type: cosine, min_learning_rate: 0.0001}", text, FORECAST))
    assert spec.training.lr_schedule.to_dict() == expected


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words", "hint"),
    [
        ("heads: per_channel", "heads: per_chanel", 4, 10, ["unknown kind of heads `per_chanel`"], "per_channel"),
        ("l2: 0.0001", "l2: -1", 6, 36, ["`l2` of layer 1 (`Dense`) must be ≥ 0"], None),
        ("l2: 0.0001", "l2: big", 6, 36, ["`l2` of layer 1 (`Dense`) must be a number"], None),
        (
            "{type: Dense, units: 24, l2: 0.0001}",
            "{type: Dropout, rate: 0.1, l2: 0.1}",
            6,
            34,
            ["`Dropout` layer (layer 1) has no argument `l2`"],
            None,
        ),
        (
            "type: cosine, min",
            "type: linear, min",
            14,
            23,
            ["unknown schedule `linear`", "`cosine`, `plateau`, `step`"],
            None,
        ),
        (
            "{type: cosine, min_learning_rate: 0.0001}",
            "{min_learning_rate: 0.0001}",
            14,
            16,
            ["`training.lr_schedule` has no `type`"],
            "type: cosine",
        ),
        (
            "{type: cosine, min_learning_rate: 0.0001}",
            "{type: step, min_learning_rate: 0.0001}",
            14,
            29,
            ["the `step` schedule has no setting `min_learning_rate`", "every", "factor"],
            "of the `cosine` and `plateau` schedules",
        ),
        (
            "{type: cosine, min_learning_rate: 0.0001}",
            "{type: step, factor: 1.5}",
            14,
            37,
            ["`training.lr_schedule.factor` must be < 1"],
            None,
        ),
        (
            "{type: cosine, min_learning_rate: 0.0001}",
            "{type: step, every: 0}",
            14,
            36,
            ["`training.lr_schedule.every` must be ≥ 1"],
            None,
        ),
        (
            "{type: cosine, min_learning_rate: 0.0001}",
            "{type: plateau, patience: 2, pateince: 3}",
            14,
            45,
            ["unknown schedule setting `pateince`"],
            "patience",
        ),
        (
            "min_learning_rate: 0.0001",
            "min_learning_rate: 0.01",
            14,
            16,
            ["`min_learning_rate` of the schedule (0.01) is not below the optimizer's learning rate (0.01)"],
            None,
        ),
        (
            "[hour_of_day, day_of_week]",
            "[hour, day_of_week]",
            15,
            19,
            ["unknown time feature `hour`", "`day_of_week`, `hour_of_day`"],
            None,
        ),
        ("[hour_of_day, day_of_week]", "[day_of_week, day_of_week]", 15, 32, ["`day_of_week` is listed twice"], None),
        ("[hour_of_day, day_of_week]", "hour_of_day", 15, 18, ["must be a non-empty list"], None),
        (
            "  time_features: [hour_of_day, day_of_week]\n",
            "",
            15,
            16,
            ["`training.time_column` names the column of the time features, but there are no `time_features`"],
            "time_features: [hour_of_day",
        ),
        ("moving_average: 25", "moving_average: 24", 17, 35, ["must be odd"], "write 25"),
        (
            "moving_average: 25",
            "moving_average: 1",
            17,
            35,
            ["`training.decomposition.moving_average` must be ≥ 3"],
            None,
        ),
        (
            "{moving_average: 25}",
            "{moving_averge: 25}",
            17,
            19,
            ["unknown decomposition setting `moving_averge`"],
            "moving_average",
        ),
    ],
)
def test_forecasting_key_errors(old, new, line, column, words, hint):
    check(forecast_error(old, new), line, column, *words, hint=hint)


def test_time_harmonics():
    text = edit("  time_column: date\n", "  time_column: date\n  time_harmonics: 3\n", FORECAST)
    t = parse_model_spec(text, "m.yaml").training
    assert t.time_harmonics == 3
    # OT's seasonal part and trend, then sin/cos of 1, 2 and 3 times the hour's and the weekday's angles
    assert t.input_shape == (96, 2 + 2 * 3 * 2)
    d = parse_model_spec(text).to_dict()
    assert d["training"]["time_harmonics"] == 3
    assert parse_model_spec(yaml.safe_dump(d, sort_keys=False)).to_dict() == d
    assert "time_harmonics" not in parse_model_spec(FORECAST).to_dict()["training"]  # 1, the default: not written
    assert parse_model_spec(FORECAST).training.input_shape == (96, 2 + 4)
    check(error(edit("harmonics: 3", "harmonics: 0", text)), 17, 19, "`training.time_harmonics` must be ≥ 1")
    check(error(edit("harmonics: 3", "harmonics: 13", text)), 17, 19, "`training.time_harmonics` must be ≤ 12")
    check(error(edit("harmonics: 3", "harmonics: 2.5", text)), 17, 19, "`training.time_harmonics`")
    alone = edit("  time_features: [hour_of_day, day_of_week]\n  time_column: date\n", "", text)
    check(
        error(alone),
        15,
        19,
        "`training.time_harmonics` shapes the time features, but there are no `time_features`",
        hint="time_features: [hour_of_day]",
    )


def test_plateau_on_val_loss_needs_validation_data():
    text = edit("{type: cosine, min_learning_rate: 0.0001}", "{type: plateau}", FORECAST)
    e = error(edit("  target: OT\n", "  target: OT\n  validation_split: 0\n", text))
    check(e, 15, 16, "the `plateau` schedule monitors `val_loss`", hint="monitor: loss")
    ok = edit("{type: plateau}", "{type: plateau, monitor: loss}", text)
    assert parse_model_spec(edit("  target: OT\n", "  target: OT\n  validation_split: 0\n", ok)).training.lr_schedule


def test_recurrent_l2_and_shared_heads_parameters():
    from airflow_amml.models.budget import layer_parameters

    spec = parse_model_spec(edit("      activation: tanh\n", "      activation: tanh\n      l2: 0.01\n"))
    assert spec.layers[0].get("l2") == 0.01
    # shared heads, LSTM on 2 features: 4 × (32 × (2 + 32) + 32), then Dense 32 → 1
    assert layer_parameters(spec) == [4 * (32 * 34 + 32), 33]


def test_shipped_horizon_models():
    folder = ROOT / "dags" / "models"
    specs = {spec.training.horizon: spec for spec in map(load_model_spec, folder.glob("ett-h*.yaml"))}
    assert sorted(specs) == [24, 96, 192, 336, 720]
    for horizon, spec in specs.items():
        t = spec.training
        version = "0.2" if horizon == 96 else "0.1"  # ett_h96:0.2: the mean of three seeds' models
        assert spec.ref == f"ett_h{horizon}:{version}" and spec.layers[-1].get("units") == horizon
        assert (t.window, t.features, t.inputs, t.predict, t.loss) == (336, ("OT",), "relative", "delta", "mse")
        assert t.lr_schedule is not None and t.lr_schedule.type == "cosine" and spec.layers[-1].get("l2") > 0
    assert specs[24].heads == "per_channel" and specs[24].training.moving_average == 25  # DLinear
    assert specs[96].training.ensemble_seeds == (7, 1, 2) and specs[720].training.ensemble_seeds == ()


ENSEMBLE = edit("  seed: 7\n", "  ensemble: {seeds: [7, 1, 2]}\n")


def test_ensemble_of_seeds():
    from airflow_amml.models.budget import layer_parameters

    spec = parse_model_spec(ENSEMBLE, "m.yaml")
    assert spec.training.ensemble_seeds == (7, 1, 2) and spec.training.seed is None
    # three copies of the whole model: 3 × [4 × (32 × (2 + 32) + 32), 33]
    assert layer_parameters(spec) == [3 * 4 * (32 * 34 + 32), 3 * 33]
    d = spec.to_dict()
    assert d["training"]["ensemble"] == {"seeds": [7, 1, 2]} and "seed" not in d["training"]
    again = parse_model_spec(yaml.safe_dump(d, sort_keys=False), "dumped.yaml")
    assert again == spec and again.to_dict() == d
    assert "ensemble" not in parse_model_spec(BASE).to_dict()["training"]  # one model: its dict is unchanged
    block = edit("  ensemble: {seeds: [7, 1, 2]}\n", "  ensemble:\n    seeds:\n      - 3\n      - 4\n", ENSEMBLE)
    assert parse_model_spec(block).training.ensemble_seeds == (3, 4)


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "words", "hint"),
    [
        ("[7, 1, 2]", "[7]", 22, 21, ["`training.ensemble.seeds` must be a list of 2 to 10 seeds", "got 1 seed"], None),
        ("[7, 1, 2]", "7", 22, 21, ["must be a list of 2 to 10 seeds", "got the integer 7"], "seeds: [7, 1, 2]"),
        ("[7, 1, 2]", "[7, 1, 7]", 22, 28, ["seed 7 is listed twice in `training.ensemble.seeds`"], "its own seed"),
        ("[7, 1, 2]", "[7, -1]", 22, 25, ["an item of `training.ensemble.seeds` must be ≥ 0"], None),
        ("{seeds: [7, 1, 2]}", "{seed: [7, 1, 2]}", 22, 14, ["unknown ensemble setting `seed`"], "seeds"),
        ("{seeds: [7, 1, 2]}", "{}", 22, 13, ["`training.ensemble` has no `seeds`"], "seeds: [7, 1, 2]"),
        (
            "  ensemble:",
            "  seed: 3\n  ensemble:",
            22,
            3,
            ["`training.seed` seeds one model; an `ensemble` trains one member per seed"],
            "remove `seed`",
        ),
    ],
)
def test_ensemble_errors(old, new, line, column, words, hint):
    check(error(edit(old, new, ENSEMBLE)), line, column, *words, hint=hint)


def test_ensemble_is_refused_with_least_squares():
    solved = """\
name: s
version: "1"
model: {layers: [{type: Dense, units: 1}]}
training: {target: OT, loss: mse, solver: least_squares, validation_split: 0, ensemble: {seeds: [1, 2]}}
"""
    check(error(solved), 4, 79, "`training.ensemble` steers gradient descent", hint="remove `ensemble`")


def test_ensemble_hints_and_its_members_in_the_budget():
    check(error(edit("{seeds: [7, 1, 2]}", "[7, 1, 2]", ENSEMBLE)), 22, 13, "`training.ensemble` must be a mapping",
          hint="ensemble: {seeds: [7, 1, 2]}")  # fmt: skip
    ten = edit("{seeds: [7, 1, 2]}", "{seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}", ENSEMBLE)
    e = error(edit("units: 32", "units: 4096", ten))
    assert "10 ensemble members of" in e.message and "fewer `ensemble.seeds`" in e.hint
