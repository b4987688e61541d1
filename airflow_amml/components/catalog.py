"""The data catalog behind `source id=...`: named data sets, read into DataFrames.

Built in: `ett` (ETTh1, hourly, 2016-07 to 2018-06). The project does not ship the CSV: it is read from
``$AMML_ETT_PATH`` when set, else from the cache folder (``$AMML_CACHE``, default ``~/.cache/amml``), where
it is downloaded from the ETDataset GitHub repository on first use. More sources: ``$AMML_CATALOG`` points
at a YAML file mapping ids to ``{path: file.csv|file.parquet, time_column: date}`` or to a SQL table or
query through SQLAlchemy: ``{url: postgresql://..., table: readings | query: "select ...", time_column: ts}``.
The time window (``start``/``end``) is pushed into the SQL as bound parameters. Parquet files are read
as a stream of record batches, only the columns asked for, and for a window only the row groups whose
statistics say they may hold it; CSV files and SQL results are read whole (see :func:`iter_source`).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq  # here, not where it is used: imported once by the executor's parent

from airflow_amml.runtime.errors import PipelineError

ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv"


def cache_dir() -> Path:
    return Path(os.environ.get("AMML_CACHE", Path.home() / ".cache" / "amml"))


def _ett_path() -> Path:
    explicit = os.environ.get("AMML_ETT_PATH")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise PipelineError(f"AMML_ETT_PATH points at {path}, which is not a file")
        return path
    path = cache_dir() / "ETTh1.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        try:
            urllib.request.urlretrieve(ETT_URL, tmp)
        except OSError as exc:
            raise PipelineError(
                f"cannot download ETTh1 from {ETT_URL}: {exc}",
                filename="source id='ett'",
            ) from exc
        tmp.replace(path)
    return path


def _entries(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {"ett": {"path": None, "time_column": "date"}}
    catalog_file = settings.get("catalog") or os.environ.get("AMML_CATALOG")
    if catalog_file:
        import yaml

        with open(catalog_file, encoding="utf-8") as fh:
            entries.update(yaml.safe_load(fh) or {})
    entries.update(settings.get("sources", {}))
    return entries


def _bound(value: Any, stamps: pd.Series) -> pd.Timestamp:
    """A window bound comparable with the data: Airflow's intervals are UTC-aware, files often naive (UTC)."""
    bound = pd.Timestamp(value)
    naive_data = getattr(stamps.dt, "tz", None) is None
    if naive_data and bound.tzinfo is not None:
        return bound.tz_convert("UTC").tz_localize(None)
    if not naive_data and bound.tzinfo is None:
        return bound.tz_localize("UTC")
    return bound


def iter_source(
    source_id: str,
    *,
    start: Any = None,
    end: Any = None,
    warmup: int = 0,
    cols: list[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_rows: int = 65_536,
) -> Iterator[pd.DataFrame]:
    """The source's records (within the window), as frames of at most ``batch_rows`` rows.

    Parquet files stream record batch by record batch (memory does not grow with the file; the schema is
    the file's, so every frame has the same dtypes). CSV files are read whole, then sliced: pandas infers
    a CSV's dtypes from what it reads, and chunks read separately could disagree. SQL sources are read
    whole too, with the window pushed into the query."""
    entries = _entries(settings or {})
    if source_id not in entries:
        from compiler.errors import did_you_mean, one_of

        raise PipelineError(
            f"unknown data source `{source_id}`; the catalog has {one_of(entries)}"
            + (f"; {did_you_mean(source_id, entries)}" if did_you_mean(source_id, entries) else "")
        )
    entry = entries[source_id]
    if entry.get("url"):
        frame = _read_sql(source_id, entry, start=start, end=end, cols=cols)
        yield from _slices(frame, batch_rows)
        return
    path = Path(entry["path"]) if entry.get("path") else _ett_path()
    if not path.is_file():
        raise PipelineError(f"data source `{source_id}`: file {path} does not exist")
    time_column = entry.get("time_column")
    windowed = bool(time_column) and (start is not None or end is not None)
    if path.suffix == ".parquet":
        # read only the columns asked for (and the time column, to cut the window): Parquet stores by column
        wanted = None if not cols else list(dict.fromkeys([*cols, *([time_column] if windowed else [])]))
        window = (time_column, start, end, warmup) if windowed else None
        frames = _read_parquet(source_id, path, batch_rows, wanted, window)
    else:
        frames = _read_csv(source_id, path)
    for frame in _window(frames, time_column, start, end, warmup):
        if cols:
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise PipelineError(
                    f"data source `{source_id}` has no column(s) {missing}; it has {list(frame.columns)}"
                )
            frame = frame[cols]
        yield from _slices(frame, batch_rows)


def _read_parquet(
    source_id: str, path: Path, batch_rows: int, columns: list[str] | None, window: tuple[Any, ...] | None
) -> Iterator[pd.DataFrame]:
    try:
        file = pq.ParquetFile(path)
        row_groups = _row_groups_to_read(file.metadata, *window) if window else None
        if columns:
            names = file.schema_arrow.names
            missing = [c for c in columns if c not in names]
            if missing:
                raise PipelineError(f"data source `{source_id}` has no column(s) {missing}; it has {names}")
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns, row_groups=row_groups):
            yield batch.to_pandas(split_blocks=True)  # a block per column: no copy into a 2-D block
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"data source `{source_id}`: cannot read {path}: {exc}") from exc


def _row_groups_to_read(
    metadata: pq.FileMetaData, time_column: str, start: Any, end: Any, warmup: int
) -> list[int] | None:
    """The row groups a time window needs, from the file's min/max statistics of the time column: from the first
    group that may hold a record of the window to the last, without gaps (so that the warm-up records are
    exactly those before the first record of the window, even in an unsorted file), plus before them enough
    groups for ``warmup`` records. A scheduled run over a long, time-ordered file then reads its interval, not
    the whole file. None: read everything."""
    if not metadata.num_row_groups:
        return None
    first_group = metadata.row_group(0)
    columns = [first_group.column(i).path_in_schema for i in range(first_group.num_columns)]
    if time_column not in columns:
        return None
    index = columns.index(time_column)
    overlapping: list[int] = []
    for group in range(metadata.num_row_groups):  # that may hold a record of the window
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            overlapping.append(group)
            continue
        try:
            low, high = pd.to_datetime(pd.Series([stats.min, stats.max]))
            bounds = pd.Series([low, high])
            if (start is not None and high < _bound(start, bounds)) or (end is not None and low >= _bound(end, bounds)):
                continue
        except (ValueError, TypeError):
            pass  # statistics that do not read as times: keep the group
        overlapping.append(group)
    if not overlapping:
        return []
    first, rows = overlapping[0], 0
    while first > 0 and rows < warmup:  # the records just before the window, for windowed models
        first -= 1
        rows += metadata.row_group(first).num_rows
    return list(range(first, overlapping[-1] + 1))


def _read_csv(source_id: str, path: Path) -> Iterator[pd.DataFrame]:
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError and names the bad line
        raise PipelineError(f"data source `{source_id}`: cannot read {path}: {exc}") from exc
    yield frame


def _slices(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    frame = frame.reset_index(drop=True)
    if len(frame) <= rows:
        if len(frame):
            yield frame
        return
    for offset in range(0, len(frame), rows):
        yield frame.iloc[offset : offset + rows]


def _window(
    frames: Iterator[pd.DataFrame], time_column: str | None, start: Any, end: Any, warmup: int
) -> Iterator[pd.DataFrame]:
    """Only the records with start <= time < end, plus the ``warmup`` records just before the first of them
    (context for windowed models), across frame boundaries."""
    if not time_column or (start is None and end is None):
        yield from frames
        return
    before: pd.DataFrame | None = None  # the last `warmup` records seen before the window began
    started = False
    for frame in frames:
        if time_column not in frame.columns:
            yield frame
            continue
        stamps = pd.to_datetime(frame[time_column])
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= (stamps >= _bound(start, stamps)).to_numpy()
        if end is not None:
            keep &= (stamps < _bound(end, stamps)).to_numpy()
        if not started and keep.any():
            started = True
            first = int(keep.argmax())
            if warmup:
                context = frame.iloc[:first] if before is None else pd.concat([before, frame.iloc[:first]])
                if len(context):
                    yield context.iloc[-warmup:]
        elif not started and warmup:
            tail = frame.iloc[-warmup:]
            before = tail if before is None else pd.concat([before, tail]).iloc[-warmup:]
        if keep.any():
            yield frame[keep]


def _read_sql(
    source_id: str, entry: Mapping[str, Any], *, start: Any, end: Any, cols: list[str] | None
) -> pd.DataFrame:
    import sqlalchemy as sa

    from airflow_amml import storage

    if not (entry.get("table") or entry.get("query")):
        raise PipelineError(f"data source `{source_id}`: a SQL source needs `table` or `query`")
    engine = storage.engine(str(entry["url"]))
    base = entry.get("query") or f'select * from "{entry["table"]}"'
    selected = ", ".join(f'"{c}"' for c in cols) if cols else "*"
    sql = f"select {selected} from ({base}) as amml_source"
    conditions, bind = [], {}
    time_column = entry.get("time_column")
    if time_column and start is not None:
        conditions.append(f'"{time_column}" >= :start')
        bind["start"] = pd.Timestamp(start).to_pydatetime()
    if time_column and end is not None:
        conditions.append(f'"{time_column}" < :end')
        bind["end"] = pd.Timestamp(end).to_pydatetime()
    if conditions:
        sql += " where " + " and ".join(conditions)
    if time_column:
        sql += f' order by "{time_column}"'
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn, params=bind)
    except sa.exc.SQLAlchemyError as exc:
        raise PipelineError(f"data source `{source_id}`: {exc.__class__.__name__}: {exc}") from exc
