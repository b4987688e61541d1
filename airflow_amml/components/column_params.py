"""Parameters that name columns (`cols=[...]`, `key=[...]`): read them as lists, and say which are missing.

Shared by the egresses (`print`, `sql_sink`); kept apart from them so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
