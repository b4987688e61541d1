"""Sinks to Parquet files and SQL tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from airflow_amml import storage
from airflow_amml.runtime.component import AbstractEgress
from airflow_amml.runtime.errors import PipelineError


class ParquetSink(AbstractEgress):
    """`parquet_sink path=...`: written to a temporary file, renamed into place when the stream ends, so a
    failed run never leaves a truncated file behind."""

    def open(self) -> None:
        self.path = Path(self.params["path"])
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = None

    def write(self, batch: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            table = pa.Table.from_pandas(batch, preserve_index=False)
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        else:
            table = pa.Table.from_pandas(batch, schema=self.writer.schema, preserve_index=False)
        self.writer.write_table(table)

    def finish(self) -> None:
        if self.writer is None:  # an empty stream still produces a (schema-less) file
            pd.DataFrame().to_parquet(self.tmp)
        else:
            self.writer.close()
            self.writer = None
        self.tmp.replace(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


class SqlSink(AbstractEgress):
    """`sql_sink table=..., key=[...]`: append rows; with `key`, rows with the same key values are replaced
    in the same transaction, so re-running a run (or a backfilled interval) never duplicates rows.
    Each batch is one transaction: what a batch wrote stays written if a later batch fails."""

    def open(self) -> None:
        self.engine = storage.engine(self.params["db"], self.context.settings)
        self.table = self.params["table"]
        self.key = list(self.params["key"] or [])

    def write(self, batch: pd.DataFrame) -> None:
        missing = [k for k in self.key if k not in batch.columns]
        if missing:
            raise PipelineError(f"`sql_sink`: key column(s) {missing} not in the records {list(batch.columns)}")
        with self.engine.begin() as conn:
            if self.key and sa.inspect(conn).has_table(self.table):
                table = sa.Table(self.table, sa.MetaData(), autoload_with=conn)
                keys = batch[self.key].drop_duplicates().itertuples(index=False, name=None)
                condition = sa.tuple_(*(table.c[k] for k in self.key)).in_(list(keys))
                conn.execute(table.delete().where(condition))
            batch.to_sql(self.table, conn, if_exists="append", index=False)
