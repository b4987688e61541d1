"""Declarations of the built-in components: one place for names, kinds, parameters and docs.

Error messages, `amml components` and the README's component table are all generated from this list.
"""

from __future__ import annotations

from .component_spec import ComponentSpec, Kind, ParamType, param
from .value_checks import FileSuffix, Re2Pattern, TableName

_INGRESS = "airflow_amml.components.ingress"
_PROGRESS = "airflow_amml.components.progress"
_EGRESS = "airflow_amml.components.egress"
_LSTM = "airflow_amml.components.lstm"
_SCALERS = "airflow_amml.components.scalers"
_EVENTS = "airflow_amml.components.events"
_SINKS = "airflow_amml.components.sinks"

_WINDOW = (
    param("start", "any", "start of the time window (ISO time); default: the run's data interval", None),
    param("end", "any", "end of the time window, exclusive; default: the run's data interval", None),
)
_COLS = param("cols", "list[str]", "columns to use; default: every numeric column", None)
_STATS_FROM = param(
    "model", "str", "use the scaler statistics stored with this model version (`ett`, `ett@champion`)", None
)

BUILTIN_COMPONENTS: tuple[ComponentSpec, ...] = (
    # ---- ingress --------------------------------------------------------------------------------
    ComponentSpec(
        "normalsource",
        Kind.INGRESS,
        "Generate records whose column `col` is drawn from a normal distribution.",
        (
            param("col", "str", "name of the generated column", "value"),
            param("mean", "float", "mean of the distribution", 0.0),
            param("std", "float", "standard deviation", 1.0),
            param("count", "int", "number of records; 0 generates forever", 1000),
            param("rate", "float", "records per second; 0 means as fast as possible", 0.0),
            param("seed", "int", "random seed, for reproducible streams", None),
        ),
        impl=f"{_INGRESS}:NormalSource",
    ),
    ComponentSpec(
        "source",
        Kind.INGRESS,
        "Read a named data source from the catalog (CSV, Parquet, SQL table or query).",
        (
            param("id", "str", "name of the data source in the catalog, e.g. `ett`"),
            *_WINDOW,
            param("warmup", "int", "records before the window's start to read too (context for windowed models)", 0),
            param("cols", "list[str]", "columns to read; default: all", None),
            param("limit", "int", "read at most this many records", None),
        ),
        impl=f"{_INGRESS}:CatalogSource",
    ),
    ComponentSpec(
        "logsource",
        Kind.INGRESS,
        "Turn the lines of a log file into records, by regex named groups or as JSON lines.",
        (
            param("path", "str", "log file to read, under the input root (`$AMML_INPUT_ROOT`)"),
            param("format", "str", "how lines are parsed", "jsonl", choices=("jsonl", "regex")),
            param("pattern", "str", "RE2 pattern with named groups (format='regex')", None, check=Re2Pattern()),
        ),
        impl=f"{_INGRESS}:LogSource",
    ),
    # ---- progress -------------------------------------------------------------------------------
    ComponentSpec(
        "filter",
        Kind.PROGRESS,
        "Pass on only the records for which `cond` is true (null counts as false).",
        (param("cond", "cond", "condition evaluated on each record"),),
        impl=f"{_PROGRESS}:Filter",
    ),
    ComponentSpec(
        "select",
        Kind.PROGRESS,
        "Keep only the listed columns, in that order.",
        (param("cols", "list[str]", "columns to keep"),),
        impl=f"{_PROGRESS}:Select",
    ),
    ComponentSpec(
        "drop",
        Kind.PROGRESS,
        "Remove the listed columns.",
        (param("cols", "list[str]", "columns to remove"),),
        impl=f"{_PROGRESS}:Drop",
    ),
    ComponentSpec(
        "rename",
        Kind.PROGRESS,
        "Rename columns: `rename OT='oil_temp'`.",
        impl=f"{_PROGRESS}:Rename",
        extra=ParamType.STR,
        extra_doc="new name of the column",
    ),
    ComponentSpec(
        "derive",
        Kind.PROGRESS,
        "Add or replace columns computed per record: `derive OT_F = OT * 9 / 5 + 32`.",
        impl=f"{_PROGRESS}:Derive",
        extra=ParamType.EXPR,
        extra_doc="expression computing the column",
    ),
    ComponentSpec(
        "minmax_scaler",
        Kind.PROGRESS,
        "Scale columns to [0, 1] with their min and max.",
        (
            _COLS,
            _STATS_FROM,
            param("fit_rows", "int", "fit on the first N records only; default: the whole stream", None),
        ),
        impl=f"{_SCALERS}:MinMaxScaler",
    ),
    ComponentSpec(
        "zscore_scaler",
        Kind.PROGRESS,
        "Standardise columns to mean 0 and standard deviation 1.",
        (
            _COLS,
            _STATS_FROM,
            param("fit_rows", "int", "fit on the first N records only; default: the whole stream", None),
        ),
        impl=f"{_SCALERS}:ZScoreScaler",
    ),
    ComponentSpec(
        "minmax_inverse",
        Kind.PROGRESS,
        "Undo `minmax_scaler` with the statistics of the scaler upstream or of a model version.",
        (_COLS, _STATS_FROM),
        impl=f"{_SCALERS}:MinMaxInverse",
    ),
    ComponentSpec(
        "stats",
        Kind.PROGRESS,
        "Summary statistics over the stream, or over a sliding window of records.",
        (
            _COLS,
            param(
                "ops",
                "list[str]",
                "statistics to compute",
                ["mean", "std"],
                choices=("count", "mean", "std", "min", "max", "sum"),
            ),
            param("window", "int", "number of recent records; default: the whole stream (one result)", None),
        ),
        impl=f"{_PROGRESS}:Stats",
    ),
    ComponentSpec(
        "window",
        Kind.PROGRESS,
        "Sliding windows of `size` records (the input of sequence models).",
        (
            param("size", "int", "records per window"),
            param("step", "int", "records between window starts", 1),
            _COLS,
        ),
        impl=f"{_PROGRESS}:Window",
    ),
    ComponentSpec(
        "train_lstm",
        Kind.PROGRESS,
        "Train the Keras model defined in YAML on the stream; emit (epoch, loss, val_loss) per epoch; "
        "register the trained model.",
        (
            param("model", "str", "model definition name and version, e.g. `ett:0.1`"),
            param("epoch", "int", "number of epochs; default: the definition's `training.epochs`", None),
            param("batch_size", "int", "training batch size; default: the definition's", None),
            param("register", "bool", "register the trained model in the registry", True),
            param("holdout", "int", "records at the end of the stream kept out of training, to evaluate on", 0),
            param(
                "promote",
                "str",
                "alias to move to the new version only if it beats the alias's current model on the hold-out",
                None,
            ),
        ),
        impl=f"{_LSTM}:TrainLstm",
    ),
    ComponentSpec(
        "lstm",
        Kind.PROGRESS,
        "Predict with a registered model: `ett` (latest), `ett@champion` (alias) or `ett/3` (version).",
        (
            param("model", "str", "registered model reference"),
            param("output", "str", "name of the prediction column", "prediction"),
        ),
        impl=f"{_LSTM}:LstmPredict",
    ),
    # ---- egress ---------------------------------------------------------------------------------
    ComponentSpec(
        "print",
        Kind.EGRESS,
        "Print records as a readable table.",
        (
            param("limit", "int", "print at most this many records", None),
            param("cols", "list[str]", "columns to print; default: all", None),
        ),
        impl=f"{_EGRESS}:Print",
    ),
    ComponentSpec(
        "alert",
        Kind.EGRESS,
        "Raise an alert event when `cond` holds; record it, and notify components waiting for it.",
        (
            param("cond", "cond", "condition that raises the alert"),
            param("message", "str", "text of the alert", "alert"),
            param("level", "str", "severity", "warning", choices=("info", "warning", "critical")),
            param("event", "str", "name of the event sent to other components", "alert"),
            param("cooldown", "int", "records to wait before the same alert can fire again", 0),
        ),
        impl=f"{_EVENTS}:Alert",
        emits="event",
    ),
    ComponentSpec(
        "snapshot",
        Kind.EGRESS,
        "Keep the last `size` records; save them to the database when the `on` event arrives.",
        (
            param("size", "int", "number of recent records kept (1 to 1,000,000)", 100),
            param("on", "str", "event that triggers a save", "alert"),
            param("table", "str", "table the snapshot rows go to (a plain name)", "amml_snapshots",
                  check=TableName(("amml_snapshots",))),
        ),
        impl=f"{_EVENTS}:Snapshot",
        listens="on",
    ),
    ComponentSpec(
        "csv_sink",
        Kind.EGRESS,
        "Write records to a CSV file.",
        (
            param("path", "str", "file to write, under the output root (`$AMML_OUTPUT_ROOT`)",
                  check=FileSuffix(".csv")),
            param("mode", "str", "replace the file or append to it", "replace", choices=("replace", "append")),
        ),
        impl=f"{_EGRESS}:CsvSink",
    ),
    ComponentSpec(
        "parquet_sink",
        Kind.EGRESS,
        "Write records to a Parquet file.",
        (
            param("path", "str", "file to write, under the output root (`$AMML_OUTPUT_ROOT`)",
                  check=FileSuffix(".parquet")),
        ),
        impl=f"{_SINKS}:ParquetSink",
    ),
    ComponentSpec(
        "sql_sink",
        Kind.EGRESS,
        "Write records to a SQL table; with `key`, rows of the same key are replaced (idempotent re-runs).",
        (
            param("table", "str", "table to write (a plain name, at most 63 characters)", check=TableName()),
            param("key", "list[str]", "columns identifying a row; rows with these keys are replaced", None),
            param("db", "str", "a database the deployment names (`$AMML_DATABASES`); default: AMML's own", None),
        ),
        impl=f"{_SINKS}:SqlSink",
    ),
)
