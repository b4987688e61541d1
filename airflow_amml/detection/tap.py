"""The evaluation tap: what stands in for a pipeline's egresses while `amml evaluate` runs it.

An evaluation must see each record's score and flag, and must not print, write files or tables, or raise
alerts for 28 series of benchmark data. So every egress of the evaluated pipeline (`print`, `csv_sink`,
`alert`, `snapshot`, …) is replaced by an :class:`EvaluationTap`: it keeps, of each batch reaching it, the
records' positions (the batch index, which the ingress assigns and filters keep) and the score and flag
columns, in a Parquet file of its own in a folder the evaluator reads afterwards. It works the same in both
executor modes: in a component process the file is the way back to the parent.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

import pandas as pd

from airflow_amml.sdk import AbstractEgress, ComponentSpec, Kind, param
from compiler import default_registry
from compiler.components import ComponentRegistry

POSITION = "__position__"
_TAP_PARAMS = ("__tap_folder__", "__tap_columns__")


class EvaluationTap(AbstractEgress):
    """Keeps positions, score and flag of the records reaching an egress (see the module docstring)."""

    def open(self) -> None:
        self.folder = Path(self.params["__tap_folder__"])
        self.wanted = list(self.params["__tap_columns__"])
        self.stem = self.folder / f"{self.name}-{secrets.token_hex(6)}"
        self.seen: list[str] = []
        self.writer = None

    def write(self, batch: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.seen:
            self.seen = [str(c) for c in batch.columns]
        kept = pd.DataFrame({POSITION: batch.index.to_numpy()})
        for column in self.wanted:
            if column in batch.columns:
                kept[column] = batch[column].to_numpy()
        table = pa.Table.from_pandas(kept, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.stem.with_suffix(".parquet"), table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def finish(self) -> None:
        self.close()
        self.stem.with_suffix(".json").write_text(json.dumps({"egress": self.name, "columns": self.seen}))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def tapped_registry(folder: Path, columns: list[str]) -> ComponentRegistry:
    """The component registry with every egress replaced by a tap writing into ``folder``; the taps keep the
    egress's name and parameters (so the compiled program runs unchanged) but neither emit nor wait for events."""
    specs = []
    for spec in default_registry().values():
        if spec.kind is Kind.EGRESS:
            spec = _tap_spec(spec, folder, columns)
        specs.append(spec)
    return ComponentRegistry(specs, load_entry_points=False)


def _tap_spec(spec: ComponentSpec, folder: Path, columns: list[str]) -> ComponentSpec:
    extra = (
        param(_TAP_PARAMS[0], "str", "where the tap writes", str(folder)),
        param(_TAP_PARAMS[1], "list[str]", "the columns it keeps", list(columns)),
    )
    return dataclasses.replace(
        spec,
        doc=f"the evaluation tap standing in for `{spec.name}`",
        params=spec.params + extra,
        impl=f"{__name__}:EvaluationTap",
        emits=None,
        listens=None,
    )


def read_taps(folder: Path) -> list[tuple[str, list[str], pd.DataFrame | None]]:
    """What each tap kept: (egress name, the columns its records had, the kept frame or None without records)."""
    found = []
    for info in sorted(folder.glob("*.json")):
        meta = json.loads(info.read_text())
        data = info.with_suffix(".parquet")
        found.append((meta["egress"], meta["columns"], pd.read_parquet(data) if data.exists() else None))
    return found
