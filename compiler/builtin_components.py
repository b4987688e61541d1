"""Declarations of the built-in components: one place for names, kinds, parameters and docs.

Error messages and `amml components` are generated from this list; `tests/test_readme.py` checks the README's
component table against it.
"""

from __future__ import annotations

from .component_spec import ComponentSpec, Kind, ParamSpec, ParamType, param
from .value_checks import Between, Coverages, FileSuffix, Re2Pattern, RecordsOrDuration, TableName

_INGRESS = "airflow_amml.components.ingress"
_PROGRESS = "airflow_amml.components.progress"
_CONSOLE = "airflow_amml.components.console"
_LSTM = "airflow_amml.components.lstm"
_SCALERS = "airflow_amml.components.scalers"
_EVENTS = "airflow_amml.components.events"
_FILE_SINKS = "airflow_amml.components.file_sinks"
_SQL_SINK = "airflow_amml.components.sql_sink"

_WINDOW = (
    param("start", "any", "start of the time window (ISO time); default: the run's data interval", None),
    param("end", "any", "end of the time window, exclusive; default: the run's data interval", None),
)
_COLS = param("cols", "list[str]", "columns to use; default: every numeric column", None)
_STATS_FROM = param(
    "model", "str", "use the scaler statistics stored with this model version (`ett`, `ett@champion`)", None
)

# ---- anomaly detection: shared parameters (the specs are in the section of the same name below) ----------
_DETECT = "airflow_amml.components.detectors"
MAX_DETECTOR_WINDOW = 1_000_000  # records a detector's window may hold (airflow_amml.detection.rolling)


_RECORDS = Between(1, MAX_DETECTOR_WINDOW, "a window holds at most 1,000,000 records; use a shorter one")
_UNIT = Between(0.0, 1.0, "a score threshold is between 0 and 1, e.g. threshold=0.99")


def _detector_params(threshold_doc: str, *, cols: bool = True) -> tuple[ParamSpec, ...]:
    """`cols`, `combine`, `threshold`, `score`, `flag`: what every detector takes."""
    shared = (
        param("threshold", "float", threshold_doc, None, check=_UNIT),
        param("score", "str", "name of the score column added (in [0, 1])", "anomaly_score"),
        param("flag", "str", "name of the boolean flag column added (score >= threshold)", "anomaly_flag"),
    )
    if not cols:
        return shared
    return (
        param("cols", "list[str]", "columns to score; default: every numeric one (not upstream detectors' scores)",
              None),
        param("combine", "str", "a record's score from its columns' scores: max (flagged when any column is), "
              "mean, or min (when all are)", "max", choices=("max", "mean", "min")),
        *shared,
    )


_MIN_PERIODS = param("min_periods", "int", "records the window needs before it scores; default min(30, window)",
                     None, check=_RECORDS)
_SIGMA3 = "flag at this score or more; default 0.9973 (3 standard deviations)"
_Z_SCALE = param("scale", "str", "score from z: tail, erf(|z|/√2) (0.9973 at 3σ); or sigma, |z|/20 capped at 1 "
                 "(keeps growing past 5σ, for anomaly_likelihood; 3σ is then 0.15)", "tail", choices=("tail", "sigma"))


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
            param(
                "warmup_for",
                "str",
                "a registered model (`ett@champion`): also read the records before the window's start its "
                "first forecast reads (its history - 1), `warmup` more before them (1 to score that forecast)",
                None,
            ),
            param("cols", "list[str]", "columns to read; default: all", None),
            param("limit", "int", "read at most this many records", None),
        ),
        impl=f"{_INGRESS}:CatalogSource",
        reads_models=("warmup_for",),
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
        reads_models=("model",),
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
        reads_models=("model",),
    ),
    ComponentSpec(
        "minmax_inverse",
        Kind.PROGRESS,
        "Undo `minmax_scaler` with the statistics of the scaler upstream or of a model version.",
        (_COLS, _STATS_FROM),
        impl=f"{_SCALERS}:MinMaxInverse",
        reads_models=("model",),
    ),
    ComponentSpec(
        "zscore_inverse",
        Kind.PROGRESS,
        "Undo `zscore_scaler` with the statistics of the scaler upstream or of a model version.",
        (_COLS, _STATS_FROM),
        impl=f"{_SCALERS}:ZScoreInverse",
        reads_models=("model",),
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
            param("layout", "str", "wide: one row per origin with `prediction` (a horizon model: `prediction_1` … "
                  "`prediction_H`); long: H rows per origin (`origin`, the time column holding the target time, "
                  "`step`, `prediction`)", "wide", choices=("wide", "long")),
            param("origins", "str", "forecast from every record that completes a window, or only from the "
                  "stream's last one (a daily run: the next H steps from the interval's end)", "every",
                  choices=("every", "last")),
            param("time", "str", "the time column (layout='long'); default: the first datetime column, or "
                  "timestamp/date/time", None),
            param("freq", "str", "time between records, e.g. '1h' (layout='long'); default: the most common "
                  "difference between the input's times", None),
            param("level", "list[float]", "prediction intervals of these coverages in % (e.g. [80, 95]): columns "
                  "`<output>_lo_80`/`<output>_hi_80` from the version's conformal half-widths (its hold-out errors; "
                  "stored for 50, 80, 90, 95 and 99)", None, check=Coverages()),
        ),
        impl=f"{_LSTM}:LstmPredict",
        reads_models=("model",),
    ),
    # ---- anomaly detection ----------------------------------------------------------------------
    ComponentSpec(
        "difference",
        Kind.PROGRESS,
        "Add each column's change since `lag` records, or a duration (`lag='1D'`), before: x[t] - x[t - lag].",
        (
            param("cols", "list[str]", "columns to difference; default: every numeric column", None),
            param("lag", "any", "records back (a number), or a duration on the time column ('1h', '1d', '7d')", 1,
                  check=RecordsOrDuration(1, MAX_DETECTOR_WINDOW, "e.g. lag=1, lag='1h' or lag='1d'")),
            param("time", "str", "the time column a duration is measured on; default: the first datetime column, or "
                  "timestamp/date/time",
                  None),
            param("suffix", "str", "added to each column's name for its difference (`value` → `value_diff`)",
                  "_diff"),
        ),
        impl="airflow_amml.components.difference:Difference",
    ),
    ComponentSpec(
        "threshold_detector",
        Kind.PROGRESS,
        "Flag values beyond fixed bounds (`low`, `high`) or where `cond` holds; the score grows with the distance.",
        (
            param("low", "float", "values below this are anomalous", None),
            param("high", "float", "values above this are anomalous", None),
            param("cond", "cond", "records that are anomalous whatever their values (score 1)", None),
            param("scale", "float", "distance beyond a bound at which the score is 0.82; default high - low, or 1",
                  None),
            *_detector_params("flag at this score or more; default 0.5 (every value beyond a bound)"),
        ),
        impl=f"{_DETECT}:ThresholdDetector",
    ),
    ComponentSpec(
        "gaussian_detector",
        Kind.PROGRESS,
        "NAB's windowed Gaussian: score = 1 - 2Q(|z|), z against the mean and std of the `window` records "
        "before each one.",
        (
            param("window", "int", "records in the window (NAB: 6400)", 6400, check=_RECORDS),
            param("step", "int", "refresh the window's statistics every this many records once full (NAB: 100)",
                  1, check=_RECORDS),
            _MIN_PERIODS,
            _Z_SCALE,
            *_detector_params(_SIGMA3),
        ),
        impl=f"{_DETECT}:GaussianDetector",
    ),
    ComponentSpec(
        "robust_detector",
        Kind.PROGRESS,
        "Robust rolling detector: z = (x - median) / (IQR / 1.349) over the `window` records before each one.",
        (
            param("window", "int", "records in the window", 1000, check=_RECORDS),
            _MIN_PERIODS,
            _Z_SCALE,
            *_detector_params(_SIGMA3),
        ),
        impl=f"{_DETECT}:RobustDetector",
    ),
    ComponentSpec(
        "flatline_detector",
        Kind.PROGRESS,
        "Stuck sensor: flag a column whose value has not moved by more than `tolerance` for `records` records "
        "(or a duration); score min(run / (2·records), 1).",
        (
            param("records", "any", "run length flagged: a number of records, or a duration such as '1h' (on `time`)",
                  12, check=RecordsOrDuration(2, MAX_DETECTOR_WINDOW, "e.g. records=12, or records='1h'")),
            param("tolerance", "float", "largest change between consecutive records that still counts as stuck", 0.0),
            param("time", "str", "the time column a duration is measured on; default: the first datetime column, or "
                  "timestamp/date/time", None),
            *_detector_params("flag at this score or more; default 0.5 (a run of `records`)"),
        ),
        impl=f"{_DETECT}:FlatlineDetector",
    ),
    ComponentSpec(
        "seasonal_detector",
        Kind.PROGRESS,
        "Seasonal baseline: each record against the running mean and spread of its hour of day, day of week or "
        "hour of week.",
        (
            param("time", "str", "the timestamp column; default: the first datetime column, or timestamp/date/time",
                  None),
            param("period", "str", "the slots a week is cut into", "hour_of_week",
                  choices=("hour_of_day", "day_of_week", "hour_of_week")),
            param("alpha", "float", "weight of each new record in its slot's exponentially weighted statistics",
                  0.05, check=Between(1e-6, 1.0, "e.g. alpha=0.05")),
            param("min_periods", "int", "records a slot needs before it scores", 10, check=_RECORDS),
            _Z_SCALE,
            *_detector_params(_SIGMA3),
        ),
        impl=f"{_DETECT}:SeasonalDetector",
    ),
    ComponentSpec(
        "residual_detector",
        Kind.PROGRESS,
        "Forecast residuals against a dynamic threshold (Hundman et al. 2018): an EWMA forecast, or a forecast "
        "column (`pred`, e.g. `lstm`'s).",
        (
            param("col", "str", "the column whose forecast errors are scored"),
            param("pred", "str", "a column holding forecasts of `col` (e.g. `lstm`'s `prediction`); "
                  "default: an EWMA forecast", None),
            param("pred_shift", "int", "records between a forecast and the value it forecasts (1: `lstm`'s, made on "
                  "the record before)", 1, check=Between(0, MAX_DETECTOR_WINDOW, "e.g. pred_shift=1")),
            param("alpha", "float", "weight of the newest record in the EWMA forecast", 0.3,
                  check=Between(1e-6, 1.0, "e.g. alpha=0.3")),
            param("smooth", "int", "span of the EWMA smoothing the absolute errors", 3, check=_RECORDS),
            param("window", "int", "smoothed errors the threshold is chosen on", 2000,
                  check=Between(10, MAX_DETECTOR_WINDOW, "e.g. window=2000")),
            param("refit", "int", "choose the threshold again every this many records", 100, check=_RECORDS),
            param("min_periods", "int", "smoothed errors needed before the first threshold", 100,
                  check=_RECORDS),
            param("model", "str", "use the threshold (and smoothing) stored with this model version when "
                  "`train_lstm` trained it (`ett@champion`), not one chosen on the stream", None),
            *_detector_params("flag at this score or more; default 0.5 (the dynamic threshold)", cols=False),
        ),
        impl=f"{_DETECT}:ResidualDetector",
        reads_models=("model",),
    ),
    ComponentSpec(
        "anomaly_likelihood",
        Kind.PROGRESS,
        "HTM's anomaly likelihood of a raw score column: its short-term mean against its own long-term "
        "distribution.",
        (
            param("input", "str", "the raw score column", "anomaly_score"),
            param("value", "str", "the metric column: a flat metric is never anomalous (NuPIC's rule)", None),
            param("average", "int", "records in the short-term mean (NuPIC: 10)", 10, check=_RECORDS),
            param("history", "int", "records in the long-term distribution (NuPIC: 8640)", 8640, check=_RECORDS),
            param("learning", "int", "first records not used for the distribution (NuPIC: 288)", 288,
                  check=Between(0, MAX_DETECTOR_WINDOW, "e.g. learning=288")),
            param("estimation", "int", "records after `learning` before the first estimate (NuPIC: 100)", 100,
                  check=_RECORDS),
            param("reestimate", "int", "estimate the distribution again every this many records (NuPIC: 100)", 100,
                  check=_RECORDS),
            param("scale", "str", "report the likelihood (linear) or NuPIC's log scale (log)", "log",
                  choices=("log", "linear")),
            *_detector_params("flag at this score or more; default 0.5 on the log scale, 0.99999 on the linear",
                              cols=False),
        ),
        impl=f"{_DETECT}:AnomalyLikelihood",
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
        impl=f"{_CONSOLE}:Print",
    ),
    ComponentSpec(
        "alert",
        Kind.EGRESS,
        "Record an alert when `cond` holds (`cond=alarm` after an `alarm` policy: one per incident), POST it to a "
        "declared webhook, send its event; `snapshot=N, after=M` saves the records around it, linked to it.",
        (
            param("cond", "cond", "condition that raises the alert"),
            param("message", "str", "text of the alert", "alert"),
            param("level", "str", "severity", "warning", choices=("info", "warning", "critical")),
            param("event", "str", "name of the event sent to other components", "alert"),
            param("cooldown", "int", "records to wait before the same alert can fire again", 0),
            param("score", "str", "the score column stored with the alert; default `anomaly_score` if present", None),
            param("time", "str", "the records' time column stored with the alert; default: the first timestamp column",
                  None),
            param("values", "list[str]", "columns stored as the values that triggered it; default: those `cond` reads",
                  None),
            param("webhook", "str", "a webhook the deployment declares by name (`$AMML_WEBHOOKS`) to POST it to", None),
            param("snapshot", "int", "records up to the alert's saved with it, in one transaction (0 to 1,000,000)", 0),
            param("after", "int", "records after the alert's added to its snapshot when they arrive", 0),
            param("snapshot_table", "str", "table the snapshot rows go to (a plain name)", "amml_snapshots",
                  check=TableName(("amml_snapshots",))),
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
            param("after", "int", "records after the alert's saved too, when they arrive", 0),
            param("table", "str", "table the snapshot rows go to (a plain name)", "amml_snapshots",
                  check=TableName(("amml_snapshots",))),
        ),
        impl=f"{_EVENTS}:Snapshot",
        listens="on",
    ),
    ComponentSpec(
        "alarm",
        Kind.PROGRESS,
        "Alarm policy (Merlion's AggregateAlarms): mark a record `alarm` when at least `min_count` flagged records "
        "fall in the `window` ending at it, then stay quiet for `suppress`; one incident, one alarm.",
        (
            param("flag", "str", "the detector's boolean flag column", "anomaly_flag"),
            param("score", "str", "flag by a score column instead (with `threshold`; default `anomaly_score`)", None),
            param("threshold", "float", "a record is flagged when its score is at least this", None),
            param("min_count", "int", "flagged records the window must hold to raise an alarm", 2),
            param("window", "any", "the window: a number of records, or a duration such as '1h' (needs `time`)", 60,
                  check=RecordsOrDuration(1, MAX_DETECTOR_WINDOW, "e.g. window=60, or window='1h' with time='...'")),
            param("suppress", "any", "after an alarm, records (or a duration) in which no other is raised", 120,
                  check=RecordsOrDuration(0, MAX_DETECTOR_WINDOW, "e.g. suppress=120, or suppress='2h'")),
            param("time", "str", "the records' timestamp column, for durations", None),
            param("output", "str", "name of the added boolean column", "alarm"),
        ),
        impl="airflow_amml.components.alarms:Alarm",
    ),
    ComponentSpec(
        "items",
        Kind.EGRESS,
        "Collect the distinct values of a column (first-seen order, at most 1024) as the items a later pipeline "
        "fans out over: `pipeline detect for series in THIS_PIPELINE.COL { ... }`.",
        (param("column", "str", "the column whose distinct values are the items"),),
        impl="airflow_amml.components.items:Items",
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
        impl=f"{_FILE_SINKS}:CsvSink",
    ),
    ComponentSpec(
        "parquet_sink",
        Kind.EGRESS,
        "Write records to a Parquet file.",
        (
            param("path", "str", "file to write, under the output root (`$AMML_OUTPUT_ROOT`)",
                  check=FileSuffix(".parquet")),
        ),
        impl=f"{_FILE_SINKS}:ParquetSink",
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
        impl=f"{_SQL_SINK}:SqlSink",
    ),
)
