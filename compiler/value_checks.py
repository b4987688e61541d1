"""Checks of constant parameter values that the runtime would refuse anyway, made at lint time instead.

Each check is called with the folded value and returns ``None`` when it is fine, or ``(problem, hint)``. The
runtime applies the same rules (it imports them from here) to values that only a run knows (``params.NAME``).
Checks are frozen dataclasses: their repr is part of the component registry's fingerprint, hence of the
compile cache's key, so it must be the same in every process (a function's repr holds its address).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

Problem = tuple[str, str] | None

# One spelling of durations for every AMML file (dag settings, `alarm window=`, `difference lag=`): a whole
# number and a unit — seconds, minutes, hours, days or weeks ('90s', '30min', '1h', '1D', '2w').
DURATION = re.compile(r"(\d{1,12})\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}
DURATION_EXAMPLES = "'90s', '30min', '1h', '1d' or '2w'"
MAX_DURATION_SECONDS = 3660 * 86_400  # ten years: far beyond any window, well inside every clock's range


def duration_seconds(text: object) -> int | None:
    """The seconds a duration such as ``'30min'`` or ``'1D'`` names; None when it is not one (or too long)."""
    if not isinstance(text, str):
        return None
    match = DURATION.fullmatch(text.strip())
    if match is None:
        return None
    seconds = int(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
    return seconds if seconds <= MAX_DURATION_SECONDS else None


@dataclass(frozen=True)
class RecordsOrDuration:
    """A number of records from ``minimum`` to ``maximum``, or a duration (positive when ``minimum`` > 0)."""

    minimum: int
    maximum: int
    example: str

    def __call__(self, value: Any) -> Problem:
        if isinstance(value, int) and not isinstance(value, bool):
            if self.minimum <= value <= self.maximum:
                return None
            return (f"expected {self.minimum:,} to {self.maximum:,} records, or a duration", self.example)
        seconds = duration_seconds(value)
        if seconds is not None and (seconds > 0 or self.minimum == 0):
            return None
        return (f"expected a number of records or a duration such as {DURATION_EXAMPLES}", self.example)


@dataclass(frozen=True)
class Between:
    """A constant number from ``low`` to ``high``."""

    low: float
    high: float
    example: str

    def __call__(self, value: Any) -> Problem:
        if isinstance(value, bool) or not isinstance(value, int | float) or self.low <= value <= self.high:
            return None
        return (f"expected a value from {self.low:,g} to {self.high:,g}", self.example)


MAX_COVERAGES = 10  # prediction-interval levels one `lstm level=` may ask for


def coverages_problem(value: object) -> Problem:
    """Why `value` is not a list of 1 … MAX_COVERAGES coverages in % (numbers strictly between 0 and 100)."""
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_COVERAGES:
        return (f"expected a list of 1 to {MAX_COVERAGES} coverages in %", "e.g. level=[80, 95]")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 < item < 100:
            shown = repr(item) if len(repr(item)) <= 40 else repr(item)[:40] + "…"
            return (f"{shown} is not a coverage: a number of % between 0 and 100", "e.g. level=[80, 95]")
    return None


@dataclass(frozen=True)  # a repr without an address: the specs' repr keys the compiled-program cache
class Coverages:
    """A constant list of prediction-interval coverages (`lstm level=[80, 95]`)."""

    def __call__(self, value: Any) -> Problem:
        return coverages_problem(value)


# 63: PostgreSQL's limit for an identifier (longer names are silently cut there, and could then collide)
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# AMML's own tables (alerts, snapshots, the registry's amml_model_*), Alembic's and SQLite's internal ones
RESERVED_TABLE_PREFIXES = ("amml_", "alembic_", "sqlite_")


def table_name_problem(name: object, allowed: tuple[str, ...] = ()) -> Problem:
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        return (
            "a table name is a letter or `_` followed by letters, digits or `_` (at most 63)",
            "e.g. table='ett_predictions'",
        )
    if name.lower().startswith(RESERVED_TABLE_PREFIXES) and name not in allowed:
        return (
            f"names starting with {', '.join(RESERVED_TABLE_PREFIXES)} are AMML's own tables",
            f"choose another name, e.g. table='{name.lower().removeprefix('amml_') or 'my_table'}_out'",
        )
    return None


@dataclass(frozen=True)
class TableName:
    """A plain table name, not one of AMML's own (except those in ``allowed``)."""

    allowed: tuple[str, ...] = ()

    def __call__(self, value: Any) -> Problem:
        return table_name_problem(value, self.allowed)


@dataclass(frozen=True)
class FileSuffix:
    """A sink writes files of its own format only (a `.py` written into a dags folder would be code)."""

    suffix: str

    def __call__(self, value: Any) -> Problem:
        if not isinstance(value, str) or PurePath(value).suffix.lower() == self.suffix:
            return None
        stem = PurePath(value).stem[:40] or "out"
        return (
            f"a {self.suffix} file is expected, not {PurePath(value).name[:80]!r}",
            f"name the file with the {self.suffix} extension, e.g. path='{stem}{self.suffix}'",
        )


@dataclass(frozen=True)
class Re2Pattern:
    """A pattern RE2 accepts (linear-time matching), with named groups. RE2 is a small C extension, imported
    only when a file has a constant pattern."""

    def __call__(self, value: Any) -> Problem:
        return self.compile(value)[1] if isinstance(value, str) else None

    @staticmethod
    def compile(value: str) -> tuple[Any, Problem]:
        """(the compiled RE2 pattern, None), or (None, the problem): the runtime uses the pattern lint checked."""
        import re2

        options = re2.Options()
        options.log_errors = False  # RE2 would also print the error to standard error
        try:
            regex = re2.compile(value, options=options)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            return None, (
                f"not a pattern RE2 accepts: {reason}",
                "RE2 has no backreferences (\\1) or look-around ((?=...), (?<=...)); use named groups "
                "(?P<name>...) and character classes",
            )
        if not regex.groupindex:
            return None, ("the pattern has no named groups", "name each field: (?P<name>...)")
        return regex, None
