"""What the pages show, computed from registry entries: formatted values, key metrics, scaler rows, the
comparison of versions, links into Airflow's own UI. No HTML here: the templates escape every value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow_amml.registry import RegisteredVersion

# the metrics most worth a column in the versions table, when a version has them (then the others, by name)
PREFERRED_METRICS = ("val_loss", "loss", "holdout_mae", "champion_holdout_mae", "mae", "rmse", "f1", "epochs")
KEY_METRIC_COLUMNS = 5
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


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive datetimes (UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def key_metrics(versions: Sequence[RegisteredVersion]) -> list[str]:
    """The metric columns of a versions table: numeric metrics any version has, the preferred ones first."""
    names = {k for v in versions for k, m in v.metrics.items() if is_number(m)}
    ordered = [m for m in PREFERRED_METRICS if m in names] + sorted(names - set(PREFERRED_METRICS))
    return ordered[:KEY_METRIC_COLUMNS]


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
    names = sorted({k for v in versions for k in v.metrics})
    ordered = [m for m in PREFERRED_METRICS if m in names] + [m for m in names if m not in PREFERRED_METRICS]
    rows = []
    for name in ordered:
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


def summaries(versions: Sequence[RegisteredVersion]) -> list[ModelSummary]:
    """One row per registered model (versions as `list_versions` orders them: by name, then number)."""
    by_name: dict[str, list[RegisteredVersion]] = {}
    for v in versions:
        by_name.setdefault(v.name, []).append(v)
    return [
        ModelSummary(
            name=name,
            latest=group[-1],
            count=len(group),
            created=group[0].created_at,
            aliases=sorted((a, v.version) for v in group for a in v.aliases),
        )
        for name, group in sorted(by_name.items())
    ]
