"""`sql_sink`: records into a SQL table, idempotently with `key`.

A sink's `table`, `key` and `db` come from the pipeline (or a trigger param), so they are checked first: tables
by plain names that are not AMML's own (:func:`airflow_amml.tables.check_table_name`), databases only by the
names the deployment declared, and statements built with SQLAlchemy Core against the reflected table.

In a fanned-out run (``config.item``) every row gets the item's column and the key gains it
(:mod:`.item_column`), so re-running one series replaces only that series' rows; a table an earlier,
not fanned-out run wrote gains the column like any new one (its earlier rows hold NULL there).

Records with a column the existing table lacks (a pipeline that gained one, e.g. `lstm`'s `model_version`)
add it to the table, nullable, in the batch's transaction (the earlier rows hold NULL there); a column is never
dropped or retyped, and a key column the table lacks is still an error (its rows could not be replaced).
With `key`, the table gets an index on the key columns (made with the table, or on the first write to a table
that lacks it): replacing a batch's rows deletes by key, which without one scans the whole table per batch
(a backfill's re-runs slowed down with the table's size).
Creating or widening a table holds the database's schema lock (``schema_history.schema_lock``): the mapped
tasks of a fan-out may write one table at once, and the second must see the table the first created.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from airflow_amml import storage, tables
from airflow_amml.schema_history import quiet_alembic, schema_lock
from airflow_amml.sdk import AbstractEgress, PipelineError

from .column_params import column_names, did_you_mean_columns
from .item_column import item_key, with_item

log = logging.getLogger(__name__)

# Keys per DELETE statement: SQLite allows 32,766 bound parameters per statement (999 before 3.32)
DELETE_KEYS_PER_STATEMENT = 400


def _not_found(names: Sequence[str], candidates: Sequence[str]) -> str:
    hints = did_you_mean_columns(names, candidates)
    return f"; {hints}" if hints else ""


class SqlSink(AbstractEgress):
    """`sql_sink table=..., key=[...]`: append rows; with `key`, rows with the same key values are replaced
    in the same transaction, so re-running a run (or a backfilled interval) never duplicates rows.
    Each batch is one transaction: what a batch wrote stays written if a later batch fails."""

    def open(self) -> None:
        self.table_name = tables.check_table_name(self.name, self.params["table"])
        self.key = item_key(column_names(self.name, "key", self.params["key"]), self.context.config)
        url = storage.named_database_url(self.name, self.params["db"], self.context.config)
        self.engine = storage.engine_for(url)
        self.where = f"`{self.name} table={self.table_name!r}`"
        self.table: sa.Table | None = None  # reflected once it exists (the first batch may create it)
        self.indexed = False  # the key's index checked (made if missing) by this run
        self.written = 0

    def progress_note(self) -> str | None:
        return f"table {self.table_name}"

    def finish(self) -> None:
        database = f"db={self.params['db']}" if self.params["db"] else "the default database"
        log.info(
            "%s: wrote %s row%s to table %s (%s, %s)",
            self.name,
            f"{self.written:,}",
            "" if self.written == 1 else "s",
            self.table_name,
            database,
            self.engine.url.render_as_string(hide_password=True),
        )

    def write(self, batch: pd.DataFrame) -> None:
        batch = with_item(self.name, batch, self.context.config)
        self._check_key_in_records(batch)
        try:
            if self.table is None or self._new_columns(self.table, batch):
                # The mapped tasks of a fan-out (other processes, other workers) may create or widen the same
                # table at once: one at a time, each seeing what the one before it did.
                with schema_lock(self.engine):
                    self.table = None
                    self._write(batch)
            else:
                self._write(batch)
            self.written += len(batch)  # committed
        except sa.exc.SQLAlchemyError as exc:
            # the driver's own words, not the statement (its values are hidden anyway: hide_parameters)
            reason = getattr(exc, "orig", None) or exc
            raise PipelineError(
                f"{self.where}: the database refused the records: {type(reason).__name__}: {reason}",
                hint="check that the records fit the table (columns and types), and that the database is reachable",
            ) from exc

    def _write(self, batch: pd.DataFrame) -> None:
        with self.engine.begin() as conn:
            table = self._existing_table(conn)
            if table is not None:
                table = self._add_new_columns(conn, table, batch)
                self._check_records_fit(table, batch)
                self._delete_same_keys(conn, table, batch)
            batch.to_sql(self.table_name, conn, if_exists="append", index=False)
            if self.key and not self.indexed:  # under the schema lock: the first write of this run
                self._index_key(conn)

    def _index_key(self, conn: sa.Connection) -> None:
        table = sa.Table(self.table_name, sa.MetaData(), autoload_with=conn)
        wanted = list(self.key)
        existing = [list(index.get("column_names") or []) for index in sa.inspect(conn).get_indexes(table.name)]
        if wanted not in existing:
            # a name of its own per table and key (databases cap identifiers at 63 characters)
            digest = hashlib.sha256("\0".join([self.table_name, *wanted]).encode()).hexdigest()[:16]
            sa.Index(f"amml_key_{digest}", *(table.c[k] for k in wanted)).create(conn)
        self.indexed = True

    def _existing_table(self, conn: sa.Connection) -> sa.Table | None:
        if self.table is None and sa.inspect(conn).has_table(self.table_name):
            self.table = sa.Table(self.table_name, sa.MetaData(), autoload_with=conn)
        return self.table

    def _add_new_columns(self, conn: sa.Connection, table: sa.Table, batch: pd.DataFrame) -> sa.Table:
        """The records' columns the table lacks, added (nullable; typed as pandas would create them); the
        table as it is then. Key columns are not added (`_check_records_fit` names them), except a fan-out's
        item column, which a table from before the fan-out lacks."""
        new = self._new_columns(table, batch)
        if not new:
            return table
        with quiet_alembic():  # (importing alembic.operations logs INFO lines)
            from alembic.migration import MigrationContext
            from alembic.operations import Operations

            operations = Operations(MigrationContext.configure(conn))
            for name in new:  # identifiers quoted by SQLAlchemy: a column name never becomes SQL text
                operations.add_column(self.table_name, sa.Column(name, column_type(batch[name]), nullable=True))
        log.warning(
            "%s: added column(s) %s to the existing table %s (its earlier rows hold NULL there)",
            self.name,
            ", ".join(new),
            self.table_name,
        )
        self.table = sa.Table(self.table_name, sa.MetaData(), autoload_with=conn)
        return self.table

    def _new_columns(self, table: sa.Table, batch: pd.DataFrame) -> list[str]:
        item = self.context.config.item
        added_by_fanout = [] if item is None else [item[0]]  # not the user's key: AMML adds it to every row
        return [
            str(c)
            for c in batch.columns
            if str(c) not in table.c and (str(c) not in self.key or str(c) in added_by_fanout)
        ]

    def _check_key_in_records(self, batch: pd.DataFrame) -> None:
        missing = [k for k in self.key if k not in batch.columns]
        if missing:
            raise PipelineError(
                f"{self.where}: key column(s) {missing} are not in the records, which have "
                f"{list(map(str, batch.columns))}{_not_found(missing, list(map(str, batch.columns)))}",
                hint="name key columns the records have (or add them upstream, e.g. with `derive`)",
            )

    def _check_records_fit(self, table: sa.Table, batch: pd.DataFrame) -> None:
        """Key and record columns must be columns of the existing table, with values of a type it holds."""
        columns = list(table.c.keys())
        for what, names in (("key", self.key), ("record", [str(c) for c in batch.columns])):
            missing = [n for n in names if n not in table.c]
            if missing:
                raise PipelineError(
                    f"{self.where}: {what} column(s) {missing} are not columns of the existing table, "
                    f"which has {columns}{_not_found(missing, columns)}",
                    hint="write to a new table, or select/rename the records' columns to the table's",
                )
        for name in batch.columns:
            self._check_type(table.c[str(name)], batch[name])

    def _check_type(self, column: sa.Column, values: pd.Series) -> None:
        if not _holds_numbers(column.type) or pd.api.types.is_numeric_dtype(values):
            return
        sample = values.dropna()
        bad = sample[pd.to_numeric(sample, errors="coerce").isna()]
        if len(bad):
            raise PipelineError(
                f"{self.where}: column `{column.name}` of the table holds numbers ({column.type}), "
                f"but the records have {bad.iloc[0]!r} (at position {bad.index[0]})",
                hint=f"convert the column upstream, e.g. `derive {column.name} = float({column.name})`, "
                "or write to a new table",
            )

    def _delete_same_keys(self, conn: sa.Connection, table: sa.Table, batch: pd.DataFrame) -> None:
        if not self.key:
            return
        key = sa.tuple_(*(table.c[k] for k in self.key))
        for chunk in _chunks(batch[self.key].drop_duplicates().itertuples(index=False, name=None)):
            conn.execute(table.delete().where(key.in_(chunk)))


def column_type(values: pd.Series) -> sa.types.TypeEngine:
    """The SQL type of a new column for these values, as `DataFrame.to_sql` types the columns it creates."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(dtype):
        return sa.Float()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return sa.DateTime(timezone=isinstance(dtype, pd.DatetimeTZDtype))
    return sa.Text()


def _holds_numbers(column_type: sa.types.TypeEngine) -> bool:
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return False
    return issubclass(python_type, (int, float, Decimal)) and python_type is not bool


def _chunks(rows: Iterator[tuple], size: int = DELETE_KEYS_PER_STATEMENT) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
