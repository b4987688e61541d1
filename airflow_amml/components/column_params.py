"""Parameters that name columns (`cols=[...]`, `key=[...]`, `time=`): read them as lists, say which are missing,
and read a time column as timestamps.

Shared by the egresses (`print`, `sql_sink`) and the time-aware progress components (`difference`,
`flatline_detector`); kept apart from them so that none imports another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.sdk import PipelineError


def column_names(component: str, param: str, value: Any) -> list[str]:
    """A list-of-names parameter (None: empty); a lone string (`key=params.k` with k='date') is refused
    rather than read as a list of its letters."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise PipelineError(
            f"`{component} {param}={value!r}`: expected a list of column names", hint=f"e.g. {param}=['date']"
        )
    return list(dict.fromkeys(value))


def did_you_mean_columns(names: Sequence[str], candidates: Sequence[str]) -> str:
    """The did-you-mean hints for each of ``names`` close to one of ``candidates``, joined ("" if none is)."""
    from compiler.errors import did_you_mean

    return " ".join(h for h in (did_you_mean(n, candidates) for n in names) if h)


def time_column(name: str, batch: pd.DataFrame, col: str | None, needs: str = "a duration needs a time column") -> str:
    """The column holding the records' times: `col` when given (it must exist), else the first datetime column,
    else one named timestamp, date or time. ``needs`` says why, in the error when there is none."""
    if col is None:
        found = [c for c in batch.columns if pd.api.types.is_datetime64_any_dtype(batch[c])]
        found += [c for c in ("timestamp", "date", "time") if c in batch.columns]
        if not found:
            raise PipelineError(
                f"`{name}`: {needs}; the records have no datetime column (or one named timestamp, date or time) "
                f"among {list(batch.columns)}",
                hint="name it with time='...'",
            )
        return found[0]
    if col not in batch.columns:
        raise PipelineError(
            f"`{name} time={col!r}`: no such column; the records have {list(batch.columns)}",
            hint="name the timestamp column with time='...'",
        )
    return col


def record_times(name: str, batch: pd.DataFrame, col: str | None) -> np.ndarray:
    """The records' timestamps (UTC, datetime64[ns]) from the time column (:func:`time_column`)."""
    col = time_column(name, batch, col)
    try:
        stamps = pd.to_datetime(batch[col], format="ISO8601" if batch[col].dtype == object else None)
    except (ValueError, TypeError) as exc:
        raise PipelineError(
            f"`{name}`: column `{col}` does not hold timestamps: {exc}",
            hint="name the timestamp column with time='...'",
        ) from None
    if stamps.isna().any():
        where = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise PipelineError(
            f"`{name}`: record {batch.index[where]} has no timestamp in `{col}`",
            hint="drop such records upstream: filter cond=...",
        )
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[ns]")
