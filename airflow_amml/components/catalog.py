"""The data catalog behind `source id=...`: named data sets, read into DataFrames.

Built in: `ett` (ETTh1, hourly, 2016-07 to 2018-06), read from the first of: ``config.ett_path``
(``$AMML_ETT_PATH``); the cache folder (``config.cache_dir``: ``$AMML_CACHE``, default ``~/.cache/amml``); the
verbatim copy shipped in this package (``airflow_amml/data/ett``, CC BY-ND 4.0); a download from the ETDataset
GitHub repository into the cache, when an install left the shipped copy out. Also built in: the 28 NAB series
shipped in ``airflow_amml/data/nab`` as ``nab/<category>/<name>`` (``nab/realKnownCause/nyc_taxi``, time column
``timestamp``), so that a pipeline can fan out over them (``for series in catalog("nab/*")``,
:func:`matching_ids`). More sources:
``config.catalog_file`` (``$AMML_CATALOG``) points at a YAML file mapping ids to
``{path: file.csv|file.parquet, time_column: date}`` or to a SQL table or query through SQLAlchemy:
``{url: postgresql://..., table: readings | query: "select ...", time_column: ts}``.
The time window (``start``/``end``) is pushed into the SQL as bound parameters. Parquet files are read
as a stream of record batches, only the columns asked for, and for a window only the row groups whose
statistics say they may hold it; CSV files and SQL results are read whole (see :func:`iter_source`).
"""

from __future__ import annotations

import fnmatch
import functools
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq  # here, not where it is used: imported once by the executor's parent

from airflow_amml.run_config import RunConfig
from airflow_amml.sdk import PipelineError

ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv"
SHIPPED_ETT = Path(__file__).resolve().parents[1] / "data" / "ett" / "ETTh1.csv"
SHIPPED_NAB = Path(__file__).resolve().parents[1] / "data" / "nab"
MAX_PATTERN_CHARS = 200  # a `catalog("...")` glob may come from a trigger param


def _ett_path(config: RunConfig) -> Path:
    if config.ett_path is not None:
        path = config.ett_path
        if not path.is_file():
            raise PipelineError(
                f"AMML_ETT_PATH points at {path}, which is not a file",
                filename="source id='ett'",
                hint="unset AMML_ETT_PATH to use the copy shipped with airflow-amml",
            )
        return path
    cached = config.cache_dir / "ETTh1.csv"
    if cached.is_file():
        return cached
    if SHIPPED_ETT.is_file():
        return SHIPPED_ETT
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part")
    try:
        urllib.request.urlretrieve(ETT_URL, tmp)
    except OSError as exc:
        raise PipelineError(
            f"cannot download ETTh1 from {ETT_URL}: {exc}",
            filename="source id='ett'",
            hint="download it by hand and set AMML_ETT_PATH to the file",
        ) from exc
    tmp.replace(cached)
    return cached


@functools.cache
def _shipped_nab() -> dict[str, Mapping[str, Any]]:
    """``nab/<category>/<name>`` → the shipped CSV (package data: listed once per process)."""
    return {
        f"nab/{path.parent.name}/{path.stem}": {"path": str(path), "time_column": "timestamp"}
        for path in sorted(SHIPPED_NAB.glob("*/*.csv"))
    }


def _entries(config: RunConfig) -> dict[str, Mapping[str, Any]]:
    """Every source id → its entry: the built-ins, then the catalog file's, then ``config.sources`` (each may
    override what came before it: a deployment's own `nab/...` entry wins over the shipped series)."""
    entries: dict[str, Mapping[str, Any]] = {"ett": {"path": None, "time_column": "date"}, **_shipped_nab()}
    if config.catalog_file is not None:
        import yaml

        with open(config.catalog_file, encoding="utf-8") as fh:
            try:
                loaded = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise PipelineError(f"the catalog {config.catalog_file} is not valid YAML: {exc}",
                                    hint="fix the file AMML_CATALOG names") from None
        if not isinstance(loaded, dict):
            raise PipelineError(f"the catalog {config.catalog_file} must map source ids to entries",
                                hint="e.g. `sensors/a: {path: /data/a.csv, time_column: ts}`")
        # `42:` or `2024-01-01:` are YAML numbers and dates: a source id is its text (`source id="42"`)
        entries.update({str(key): value for key, value in loaded.items()})
    entries.update(config.sources)
    return entries


def matching_ids(config: RunConfig, pattern: str) -> list[str]:
    """The catalog's source ids that match the fnmatch ``pattern`` (``*`` spans ``/``: ``nab/*`` is every NAB
    series), sorted; [] when none does. What `catalog("GLOB")` fans out over, at run time: it reads the
    catalog file, never a source."""
    if not isinstance(pattern, str) or not pattern:
        raise PipelineError(
            f"catalog({pattern!r}): expected a glob of source ids", hint='e.g. catalog("nab/realKnownCause/*")'
        )
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PipelineError(
            f"catalog(...): the glob has {len(pattern):,} characters, more than {MAX_PATTERN_CHARS}",
            hint='write a short glob such as catalog("nab/*")',
        )
    return sorted(str(i) for i in _entries(config) if fnmatch.fnmatchcase(str(i), pattern))


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
    config: RunConfig,
    batch_rows: int = 65_536,
) -> Iterator[pd.DataFrame]:
    """The source's records (within the window), as frames of at most ``batch_rows`` rows.

    Parquet files stream record batch by record batch (memory does not grow with the file; the schema is
    the file's, so every frame has the same dtypes). CSV files are read whole, then sliced: pandas infers
    a CSV's dtypes from what it reads, and chunks read separately could disagree. SQL sources are read
    whole too, with the window pushed into the query. ``config`` says what the catalog holds."""
    entries = _entries(config)
    if source_id not in entries:
        from compiler.errors import did_you_mean, one_of

        raise PipelineError(
            f"unknown data source `{source_id}`; the catalog has {one_of(entries)}"
            + (f"; {did_you_mean(source_id, entries)}" if did_you_mean(source_id, entries) else "")
        )
    entry = entries[source_id]
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            _window_time(source_id, name, value)
    cols = _column_list(source_id, cols)
    if entry.get("url"):
        frame = _read_sql(source_id, entry, start=start, end=end, cols=cols)
        yield from _slices(frame, batch_rows)
        return
    path = Path(entry["path"]) if entry.get("path") else _ett_path(config)
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
            frame = frame[_known_columns(source_id, cols, list(frame.columns))]
        yield from _slices(frame, batch_rows)


def _read_parquet(
    source_id: str, path: Path, batch_rows: int, columns: list[str] | None, window: tuple[Any, ...] | None
) -> Iterator[pd.DataFrame]:
    try:
        file = pq.ParquetFile(path)
        row_groups = _row_groups_to_read(file.metadata, *window) if window else None
        if columns:
            _known_columns(source_id, columns, file.schema_arrow.names)
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
    """The SQL source's records, by a statement built with SQLAlchemy Core: the table is reflected (or the
    catalog's query wrapped as a subquery whose columns are asked of the database), the columns asked
    for are looked up among its columns, and the window is bound as parameters. Nothing from the run
    (`cols`, `start`, `end`) is ever part of the SQL text."""
    import sqlalchemy as sa

    from airflow_amml import storage

    if not (entry.get("table") or entry.get("query")):
        raise PipelineError(f"data source `{source_id}`: a SQL source needs `table` or `query`")
    engine = storage.engine_for(str(entry["url"]))  # trusted: the catalog is deployment configuration
    try:
        with engine.connect() as conn:
            relation = _sql_relation(conn, entry)
            statement = _sql_select(source_id, relation, entry.get("time_column"), start, end, cols)
            return pd.read_sql(statement, conn)
    except sa.exc.SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise PipelineError(
            f"data source `{source_id}`: the database refused the query: {type(reason).__name__}: {reason}",
            hint="check the catalog entry (url, table or query) and that the database is reachable",
        ) from exc


def _sql_relation(conn: Any, entry: Mapping[str, Any]) -> Any:
    """What the source selects from: its table, reflected (``schema.table`` or ``schema:`` for a table in
    another schema), or the catalog's query as a subquery with the columns its result has."""
    import sqlalchemy as sa

    if entry.get("query"):
        query = sa.text(str(entry["query"]))  # trusted: written by the catalog's owner
        names = list(conn.execute(sa.select(sa.text("*")).select_from(query.columns().subquery()).limit(0)).keys())
        return query.columns(*(sa.column(n) for n in names)).subquery("amml_source")
    name, schema = str(entry["table"]), entry.get("schema")
    if schema is None and "." in name:
        schema, name = name.split(".", 1)
    return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)


def _sql_select(
    source_id: str, relation: Any, time_column: str | None, start: Any, end: Any, cols: list[str] | None
) -> Any:
    import sqlalchemy as sa

    available = list(relation.c.keys())
    if cols:
        statement = sa.select(*(relation.c[c] for c in _known_columns(source_id, cols, available)))
    else:
        statement = sa.select(relation)
    if time_column:
        stamps = relation.c[_known_columns(source_id, [time_column], available, what="time column")[0]]
        if start is not None:
            statement = statement.where(stamps >= _sql_bound(source_id, "start", start, stamps))
        if end is not None:
            statement = statement.where(stamps < _sql_bound(source_id, "end", end, stamps))
        statement = statement.order_by(stamps)
    return statement


def _column_list(source_id: str, cols: Any) -> list[str] | None:
    """`cols` as a list of names without repeats; a lone string (a trigger param) is not a list of letters."""
    if cols is None:
        return None
    if isinstance(cols, str) or not isinstance(cols, list | tuple) or not all(isinstance(c, str) for c in cols):
        raise PipelineError(
            f"data source `{source_id}`: `cols` must be a list of column names, got {cols!r}",
            hint="e.g. cols=['date', 'OT']",
        )
    return list(dict.fromkeys(cols))


def _known_columns(source_id: str, cols: list[str], available: list[str], what: str = "column(s)") -> list[str]:
    """``cols`` if every one is a column of the source, else an error listing them (with did-you-mean)."""
    from compiler.errors import did_you_mean

    missing = [c for c in cols if c not in available]
    if missing:
        hints = [h for h in (did_you_mean(c, available) for c in missing) if h]
        raise PipelineError(
            f"data source `{source_id}` has no {what} {missing}; it has {available}",
            hint=" ".join(hints) or "name columns the source has",
        )
    return cols


def _window_time(source_id: str, name: str, value: Any) -> pd.Timestamp:
    """A window bound read as a time, or an error naming the source (`start` may come from a trigger param)."""
    try:
        bound = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        bound = pd.NaT
    if pd.isna(bound):
        raise PipelineError(
            f"data source `{source_id}`: `{name}={value!r}` is not a time", hint=f"e.g. {name}='2017-01-01'"
        )
    return bound


def _sql_bound(source_id: str, name: str, value: Any, column: Any) -> Any:
    """A window bound as a bound parameter, comparable with the column: Airflow's intervals are UTC-aware,
    a column without a time zone holds UTC (as :func:`_bound` does for files)."""
    import sqlalchemy as sa

    bound = _window_time(source_id, name, value)
    if isinstance(column.type, sa.DateTime) and not column.type.timezone and bound.tzinfo is not None:
        bound = bound.tz_convert("UTC").tz_localize(None)
    return bound.to_pydatetime()
