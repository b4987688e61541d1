"""What the pages show, computed from registry entries: formatted values, key metrics, scaler rows, the
comparison of versions, links into Airflow's own UI. No HTML here: the templates escape every value."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow_amml.registry import AliasChange, RegisteredVersion

# the metrics most worth a column in the versions table, when a version has them (then the others, by name):
# how well the model forecasts first; the residual_* statistics the detector reads are internals, shown last
PREFERRED_METRICS = ("holdout_mae", "val_loss", "loss", "champion_holdout_mae", "mae", "rmse", "f1", "epochs")
INTERNAL_METRICS = ("residual_", "train_records", "holdout_records")
KEY_METRIC_COLUMNS = 5
CHAMPION = "champion"

# What the metrics train_lstm registers mean (components/lstm.py, components/evaluation.py,
# detection/dynamic_threshold.py), shown next to them on the version page
METRIC_HELP = {
    "loss": "training loss of the last epoch: the definition's `loss` on the scaled training data (an "
    "ensemble's: the loss of its mean forecast on them after training, plus the members' mean l2 penalty)",
    "val_loss": "the same loss on the validation split (the last records of the training data), last epoch "
    "(an ensemble's: of its mean forecast)",
    "holdout_mae": "mean absolute error on the hold-out records (`train_lstm holdout=N`) in the target's own "
    "units; for a horizon model the mean over every forecast window and step",
    "holdout_mse": "mean squared error on the hold-out, like `holdout_mae`",
    "holdout_mae_scaled": "`holdout_mae` in the scaler's units (as forecasting papers report it)",
    "holdout_mse_scaled": "`holdout_mse` in the scaler's units (as forecasting papers report it)",
    "holdout_mae_vs_last": "`holdout_mae` over the MAE of repeating the last value on the same forecasts "
    "(the naive forecast): below 1, the model beats it",
    "holdout_mse_vs_last": "`holdout_mse` over the MSE of repeating the last value on the same forecasts: "
    "below 1, the model beats it",
    "holdout_records": "records held out of the training to compute `holdout_mae`",
    "epochs": "epochs trained (an ensemble's: the most one member ran)",
    "ensemble_members": "models averaged (`training.ensemble`), one trained per seed",
    "train_records": "records the model was trained on",
    "residual_mean": "mean of the smoothed one-step errors on the training data: what "
    "`residual_detector model=` reads (scaled units)",
    "residual_threshold": "the dynamic threshold ε on those errors (Hundman et al. 2018) that "
    "`residual_detector model=` flags anomalies above",
    "residual_smooth": "span of the moving average that smooths the errors (`residual_detector`)",
    "residual_records": "how many one-step errors the residual statistics were computed from",
}
METRIC_HELP_PATTERNS = (  # per forecast step (`holdout_mae_h24`); named after an alias (`champion_holdout_mae`)
    (re.compile(r"^holdout_(mae|mse)_scaled_h(\d+)$"), "`holdout_{0}_scaled` of the forecasts {1} step(s) ahead"),
    (re.compile(r"^holdout_(mae|mse)_h(\d+)$"), "`holdout_{0}` of the forecasts {1} step(s) ahead"),
    (re.compile(r"^(\w+)_holdout_mae$"), "MAE of the version @{0} named at training time, on the same hold-out "
     "forecasts (and steps) the promotion gate compared"),
    (re.compile(r"^(\w+)_version$"), "the version @{0} named when this one was evaluated"),
)
SCALER_STATISTICS = {"minmax": ("min", "max"), "zscore": ("mean", "std")}
MAX_COMPARED = 20


def value(v: Any) -> str:
    """A metric or statistic as people read it: 4 significant digits for floats, `—` for nothing."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def param_value(v: Any) -> str:
    """A training parameter as it is written in an AMML file (`register=true`), `—` for none given."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return value(v)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes (UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def metric_help(name: str) -> str | None:
    """What a metric means, for the ones the training registers; None for others."""
    if name in METRIC_HELP:
        return METRIC_HELP[name]
    for pattern, text in METRIC_HELP_PATTERNS:
        if match := pattern.match(name):
            return text.format(*match.groups())
    return None


def metric_order(names: set[str] | Sequence[str]) -> list[str]:
    """Metric names as the pages list them: the preferred ones, then the others, then the internals."""
    rest = sorted(set(names) - set(PREFERRED_METRICS))
    internal = [m for m in rest if m.startswith(INTERNAL_METRICS)]
    return [m for m in PREFERRED_METRICS if m in names] + [m for m in rest if m not in internal] + internal


def key_metrics(versions: Sequence[RegisteredVersion]) -> list[str]:
    """The metric columns of a versions table: numeric metrics any version has, the preferred ones first;
    internals (residual statistics, record counts) only when the versions have no other metric."""
    names = {k for v in versions for k, m in v.metrics.items() if is_number(m)}
    telling = {m for m in names if not m.startswith(INTERNAL_METRICS)}
    return metric_order(telling or names)[:KEY_METRIC_COLUMNS]


def params_of(version: RegisteredVersion) -> dict[str, Any]:
    """The training parameters a version was registered with ({} for versions from before they were kept)."""
    params = getattr(version, "params", None)
    return dict(params) if isinstance(params, dict) else {}


def short_run(run_id: str | None) -> str:
    """A run id as a label: `manual__2026-12-01T15:38:51.312493+00:00` → `manual 2026-12-01 15:38:51`."""
    if not run_id:
        return "—"
    kind, sep, stamp = run_id.partition("__")
    if sep:
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            pass
        else:
            return f"{kind} {when(moment)[:19]}"
    return run_id if len(run_id) <= 32 else run_id[:31] + "…"


def lineage_key(dag_id: str | None, run_id: str | None, task_id: str | None) -> str | None:
    """How a run names itself when it moves an alias (components/lstm.py `alias_set_by`): dag/run/task."""
    return f"{dag_id}/{run_id}/{task_id}" if dag_id and run_id and task_id else None


@dataclass(frozen=True)
class SetBy:
    label: str
    run_url: str | None = None  # when a run (not a person) moved the alias
    full: str = ""


def set_by(change: AliasChange, versions: Sequence[RegisteredVersion], airflow_root: str) -> SetBy:
    """Who moved an alias, as a short label: a person's name, or the training run that did it (linked)."""
    who = change.set_by or ""
    for v in versions:
        lin = v.lineage
        if who and who == lineage_key(lin.dag_id, lin.run_id, lin.task_id):
            return SetBy(f"run {short_run(lin.run_id)}", run_url(airflow_root, lin.dag_id, lin.run_id), who)
    return SetBy(who or "—", None, who)


def description(definition_yaml: str) -> str:
    """The `description:` of a model definition's YAML ('' when it has none or does not parse)."""
    import yaml

    try:
        data = yaml.safe_load(definition_yaml)
    except yaml.YAMLError:
        return ""
    text = data.get("description") if isinstance(data, dict) else None
    return " ".join(text.split()) if isinstance(text, str) else ""


def other_aliases(entry: RegisteredVersion, versions: Sequence[RegisteredVersion]) -> list[str]:
    """The model's aliases that point at another version than `entry` (what its page may offer to move)."""
    return sorted({a for v in versions if v.version != entry.version for a in v.aliases})


def suggested_alias(entry: RegisteredVersion) -> str:
    """The promote form's default: `champion`, unless this version is the champion already."""
    return "" if CHAMPION in entry.aliases else CHAMPION


@dataclass(frozen=True)
class ScalerTable:
    kind: str
    statistics: tuple[str, ...]
    rows: list[tuple[str, list[str]]]  # (column, formatted statistics)


def scaler_table(scaler: dict[str, Any]) -> ScalerTable | None:
    """The scaler statistics a model was trained with, one row per column (`{"kind", "columns"}`, as the
    scalers store them); None when the version has none."""
    if not scaler:
        return None
    columns = scaler.get("columns")
    kind = str(scaler.get("kind", "scaler"))
    if not isinstance(columns, dict):  # some other shape: show it key by key
        return ScalerTable(kind, ("value",), [(str(k), [value(v)]) for k, v in sorted(scaler.items())])
    width = max((len(s) if isinstance(s, list) else 1 for s in columns.values()), default=1)
    statistics = SCALER_STATISTICS.get(kind, tuple(f"statistic {i + 1}" for i in range(width)))
    rows = [(str(col), [value(x) for x in (s if isinstance(s, list) else [s])]) for col, s in columns.items()]
    return ScalerTable(kind, statistics, rows)


@dataclass(frozen=True)
class ComparedRow:
    metric: str
    cells: list[str]
    differs: bool
    best: int | None  # index of the lowest value (losses and errors: lower is better), when numeric


def compare(versions: Sequence[RegisteredVersion]) -> list[ComparedRow]:
    """Every metric of the versions side by side; a row differs when the versions do not all agree."""
    rows = []
    for name in metric_order({k for v in versions for k in v.metrics}):
        raw = [v.metrics.get(name) for v in versions]
        numbers = [x for x in raw if is_number(x)]
        differs = len({repr(x) for x in raw}) > 1
        lower_is_better = any(word in name for word in ("loss", "mae", "rmse", "mse", "error"))
        best = raw.index(min(numbers)) if differs and lower_is_better and len(numbers) == len(raw) else None
        rows.append(ComparedRow(name, [value(x) for x in raw], differs, best))
    return rows


def run_url(airflow_root: str, dag_id: str | None, run_id: str | None) -> str | None:
    """Airflow 3's own page of a DAG run (its UI route `dags/:dagId/runs/:runId`)."""
    if not dag_id or not run_id:
        return None
    return f"{airflow_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest: RegisteredVersion
    count: int
    created: datetime
    aliases: list[tuple[str, int]]  # (alias, version), by alias
    champion: RegisteredVersion  # the version @champion names, else the latest
    key_metric: tuple[str, Any] | None  # the champion's most telling metric (name, value)


def summaries(versions: Sequence[RegisteredVersion]) -> list[ModelSummary]:
    """One row per registered model (versions as `list_versions` orders them: by name, then number)."""
    by_name: dict[str, list[RegisteredVersion]] = {}
    for v in versions:
        by_name.setdefault(v.name, []).append(v)
    found = []
    for name, group in sorted(by_name.items()):
        champion = next((v for v in group if CHAMPION in v.aliases), group[-1])
        metric = next(iter(key_metrics([champion])), None)
        found.append(
            ModelSummary(
                name=name,
                latest=group[-1],
                count=len(group),
                created=group[0].created_at,
                aliases=sorted((a, v.version) for v in group for a in v.aliases),
                champion=champion,
                key_metric=(metric, champion.metrics[metric]) if metric else None,
            )
        )
    return found
