"""`alarm`: an alarm policy in the style of Merlion's `AggregateAlarms`: one incident, one alarm.

A detector flags every anomalous record; an incident is usually a run of them. `alarm` raises an alarm on a
flagged record only when

1. at least ``min_count`` flagged records (this one included) fall in the window that ends at it: the last
   ``window`` records, or with a duration (``window='1h'``) the records whose ``time`` is at most that long
   before it (both ends included, as Merlion's ``alm_window_minutes``); and
2. no alarm was raised within ``suppress`` before it: an alarm silences the next ``suppress`` records (or
   the records whose time is at most ``suppress`` after its own, as ``alm_suppress_minutes``).

It adds a boolean column (``output``, default ``alarm``), true on the record that raises each alarm, so
``alert cond=alarm`` records one alert per incident. Unlike Merlion, the first records of a stream get no
smaller ``min_count`` (Merlion lowers it to the number of records seen so far), so a stream that starts with
one flagged record raises no alarm from it alone.

Records are counted as they reach the component (after any filter upstream). Everything is computed over a
whole batch with numpy; the state carried between batches (the last ``min_count - 1`` flagged records, the
last alarm, the records seen) makes the result the same for any split of the stream into batches. The only
loop runs once per alarm raised (suppression makes each alarm depend on the one before).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_amml.sdk import AbstractProgress, PipelineError
from compiler.value_checks import DURATION_EXAMPLES, duration_seconds

NS_PER_SECOND = 1_000_000_000


class _Span:
    """A window or suppression length: a number of records, or a duration (in nanoseconds of `time`)."""

    def __init__(self, name: str, raw: object, *, minimum: int) -> None:
        self.name = name
        self.in_time = isinstance(raw, str)
        if self.in_time:
            seconds = duration_seconds(raw)
            if seconds is None or (minimum and seconds == 0):
                raise PipelineError(
                    f"`alarm {name}={raw!r}`: expected a duration such as {DURATION_EXAMPLES}",
                    hint=f"give a number of records ({name}=10) or a duration ({name}='1h') with time='<column>'",
                )
            self.length = seconds * NS_PER_SECOND
        else:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
                raise PipelineError(
                    f"`alarm {name}={raw!r}`: expected a number of records ≥ {minimum} or a duration such as '1h'",
                    hint=f"e.g. {name}=10, or {name}='1h' with time='<column>'",
                )
            self.length = raw


class Alarm(AbstractProgress):
    """`alarm min_count=3, window=5, suppress=20`: mark the record that raises each alarm."""

    def open(self) -> None:
        p = self.params
        self.min_count = p["min_count"]
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 1:
            raise PipelineError(
                f"`alarm min_count={self.min_count!r}`: expected a number of flagged records ≥ 1",
                hint="e.g. min_count=3",
            )
        self.window = _Span("window", p["window"], minimum=1)
        self.suppress = _Span("suppress", p["suppress"], minimum=0)
        if not self.window.in_time and self.min_count > self.window.length:
            raise PipelineError(
                f"`alarm min_count={self.min_count}, window={self.window.length}`: {self.min_count} flagged records "
                f"never fit in a window of {self.window.length}, so no alarm could ever be raised",
                hint=f"make the window at least {self.min_count} records, or lower min_count",
            )
        self.time_col = p["time"]
        if (self.window.in_time or self.suppress.in_time) and not self.time_col:
            raise PipelineError(
                "`alarm`: a window or suppression given as a duration needs the records' time",
                hint="name the timestamp column, e.g. time='timestamp'",
            )
        self.threshold = p["threshold"]
        self.score_col = p["score"]
        if self.score_col is not None and self.threshold is None:
            raise PipelineError(
                f"`alarm score={self.score_col!r}`: a score flags a record only above a threshold",
                hint="add threshold=, e.g. threshold=0.9",
            )
        if self.threshold is not None:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
                raise PipelineError(f"`alarm threshold={self.threshold!r}`: expected a number", hint="e.g. 0.9")
            self.score_col = self.score_col or "anomaly_score"
        # carried between batches: the ordinals (and times) of the last min_count - 1 flagged records, the
        # last alarm's ordinal and time, the number of records seen and the last time (times must not go back)
        self.flagged_ordinals = np.empty(0, dtype=np.int64)
        self.flagged_times = np.empty(0, dtype=np.int64)
        self.last_alarm: tuple[int, int] | None = None
        self.seen = 0
        self.last_time: int | None = None
        self.alarms = 0

    def process(self, batch: pd.DataFrame) -> pd.DataFrame:
        n = len(batch)
        if n == 0:
            return batch.assign(**{self.params["output"]: np.zeros(0, dtype=bool)})
        flags = self._flags(batch)
        ordinals = self.seen + np.arange(n, dtype=np.int64)
        times = self._times(batch) if self.time_col else ordinals
        self.seen += n
        alarm = np.zeros(n, dtype=bool)
        if flags.any():
            alarm[self._alarms(np.flatnonzero(flags), ordinals, times)] = True
        out = batch.copy()
        out[self.params["output"]] = alarm
        return out

    def _alarms(self, flagged: np.ndarray, ordinals: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Indexes (into the batch) of the flagged records that raise an alarm."""
        carried = len(self.flagged_ordinals)
        all_ordinals = np.concatenate([self.flagged_ordinals, ordinals[flagged]])
        all_times = np.concatenate([self.flagged_times, times[flagged]])
        # the window holds min_count flagged records when the (min_count - 1)-th flagged record before this
        # one is still inside it
        k = np.arange(carried, len(all_ordinals))
        earlier = k - (self.min_count - 1)
        reach = np.where(earlier >= 0, earlier, 0)
        measure = all_times if self.window.in_time else all_ordinals
        inside = measure[k] - measure[reach] <= (self.window.length if self.window.in_time else self.window.length - 1)
        qualifies = flagged[(earlier >= 0) & inside]
        keep = self.min_count - 1
        self.flagged_ordinals = all_ordinals[-keep:] if keep else all_ordinals[:0]
        self.flagged_times = all_times[-keep:] if keep else all_times[:0]
        if not len(qualifies):
            return qualifies
        # suppression: each alarm silences what follows it, so the alarms are found one after another
        marks = times[qualifies] if self.suppress.in_time else ordinals[qualifies]
        raised = []
        last = None if self.last_alarm is None else self.last_alarm[1 if self.suppress.in_time else 0]
        start = 0 if last is None else int(np.searchsorted(marks, last + self.suppress.length, side="right"))
        while start < len(marks):
            raised.append(start)
            start = int(np.searchsorted(marks, marks[start] + self.suppress.length, side="right"))
        if not raised:
            return qualifies[:0]
        chosen = qualifies[raised]
        self.last_alarm = (int(ordinals[chosen[-1]]), int(times[chosen[-1]]))
        self.alarms += len(chosen)
        return chosen

    def _flags(self, batch: pd.DataFrame) -> np.ndarray:
        column = self.score_col if self.threshold is not None else self.params["flag"]
        if column not in batch.columns:
            what = "score" if self.threshold is not None else "flag"
            raise PipelineError(
                f"`alarm`: no {what} column `{column}`; the records have {list(batch.columns)}",
                hint=f"name the detector's {what} column with {what}='...', or put a detector before the alarm",
            )
        values = batch[column]
        if self.threshold is not None:
            scores = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            return scores >= float(self.threshold)  # NaN compares false: no score, no flag
        if values.dtype == bool:
            return values.to_numpy()
        try:  # true/false with nulls (an object or nullable column): a null flags nothing
            return pd.array(values, dtype="boolean").to_numpy(dtype=bool, na_value=False)
        except (TypeError, ValueError):
            raise PipelineError(
                f"`alarm`: the flag column `{column}` holds {values.dtype} values, not true/false",
                hint="flag records with a detector, or give score='...' and threshold=... instead",
            ) from None

    def _times(self, batch: pd.DataFrame) -> np.ndarray:
        column = self.time_col
        if column not in batch.columns:
            raise PipelineError(
                f"`alarm time={column!r}`: no such column; the records have {list(batch.columns)}",
                hint="name the records' timestamp column",
            )
        values = batch[column]
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            try:
                values = pd.to_datetime(values, format="ISO8601")
            except (ValueError, TypeError) as exc:
                raise PipelineError(
                    f"`alarm time={column!r}`: the column does not hold times ({exc})",
                    hint="name a timestamp column, e.g. one written as 2017-01-01 00:00:00",
                ) from None
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        missing = np.flatnonzero(values.isna().to_numpy())
        if len(missing):
            raise PipelineError(
                f"`alarm time={column!r}`: the record at position {batch.index[missing[0]]} has no time",
                hint="drop records without a time first, e.g. filter cond=not is_null(...)",
            )
        previous = np.concatenate([[stamps[0] if self.last_time is None else self.last_time], stamps[:-1]])
        back = np.flatnonzero(stamps < previous)
        if len(back):
            raise PipelineError(
                f"`alarm time={column!r}`: the record at position {batch.index[back[0]]} is older than the one "
                "before it; windows in time need records in time order",
                hint="sort the records by time, or give window and suppress in records instead",
            )
        self.last_time = int(stamps[-1])
        return stamps
