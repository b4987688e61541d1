"""The item of a fanned-out run on what its sinks write, so that each series' results stay separable.

In a run of ``pipeline detect for series in catalog("nab/*")`` for ``nab/realKnownCause/nyc_taxi``
(``config.item == ("series", "nab/realKnownCause/nyc_taxi")``) every row a sink writes gets a column named by
the loop variable (``series``) holding the item; `sql_sink` adds it to its `key`, and the file sinks write a
file per item (:func:`item_path`). A run that is not fanned out (``config.item is None``) writes as before.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from airflow_amml.registry.names import item_slug
from airflow_amml.run_config import RunConfig
from airflow_amml.sdk import PipelineError


def with_item(component: str, batch: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """``batch`` with the column ``<variable> = <item>`` (the batch itself when the run has no item).

    Records that already have the column are accepted when it holds the item everywhere (e.g. a `derive`
    upstream wrote it); any other value is refused, because the rows could then not be told apart by item."""
    if config.item is None:
        return batch
    variable, value = config.item
    if variable in batch.columns:
        held = batch[variable]
        other = held[held.astype(str) != str(value)]
        if len(other):
            raise PipelineError(
                f"`{component}`: the records already have a column `{variable}` (the fan-out's loop variable), "
                f"holding {other.iloc[0]!r} where this run's item is {value!r}",
                hint=f"rename that column upstream (e.g. `rename {variable}_in_data='{variable}'`), or name the "
                "loop variable differently",
            )
        return batch
    return batch.assign(**{variable: value})


def item_key(key: list[str], config: RunConfig) -> list[str]:
    """A sink's `key` with the item's column added (so a re-run of one item replaces only that item's rows);
    no key stays no key (the sink appends, as it does outside a fan-out)."""
    if config.item is None or not key or config.item[0] in key:
        return key
    return [*key, config.item[0]]


def item_path(path: Path, config: RunConfig) -> Path:
    """The file a file sink writes for this run's item: ``out.csv`` → ``out.<slug of the item>.csv``.

    A file per item, not one shared file with the item's column: the mapped tasks of one fan-out may run at
    the same time on different workers, and each file sink writes a temporary file renamed over its target at
    the end, so two tasks sharing a target would each replace the other's rows (the last rename wins) —
    and `mode='append'` could not help, as each copies the old file before the other's rename."""
    if config.item is None:
        return path
    return path.with_name(f"{path.stem}.{item_slug(config.item[1])}{path.suffix}")
