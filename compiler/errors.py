"""One rooted error hierarchy for everything a user can get wrong in an AMML file.

Every error carries the file, line and column, renders the offending source line with a caret under the
column, and may end with a hint (usually "did you mean ...?"). The shape follows lark's ``get_context``
and bytewax's "what is wrong; what was received; how to fix it" messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class AmmlError(Exception):
    """Base class of every error caused by AMML input."""

    label = "error"

    def __init__(
        self,
        message: str,
        *,
        filename: str = "<string>",
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source = source
        self.hint = hint

    def located(self, filename: str, source: str | None) -> AmmlError:
        """Attach the file name and text (errors raised deep inside know only line and column)."""
        self.filename = filename
        if self.source is None:
            self.source = source
        return self

    @property
    def location(self) -> str:
        if self.line is None:
            return self.filename
        return f"{self.filename}:{self.line}:{self.column or 1}"

    def context(self) -> str:
        """The source line with a caret under the column, or '' when unknown."""
        if self.source is None or self.line is None:
            return ""
        lines = self.source.split("\n")  # the parser counts only \n as a line break
        if not 1 <= self.line <= len(lines):
            return ""
        text = lines[self.line - 1].expandtabs(1)
        col = max(1, min(self.column or 1, len(text) + 1))
        gutter = f"{self.line:>4} | "
        return f"{gutter}{text}\n{' ' * (len(gutter) - 2)}| {' ' * (col - 1)}^"

    def __str__(self) -> str:
        parts = [f"{self.location}: {self.label}: {self.message}"]
        ctx = self.context()
        if ctx:
            parts.append(ctx)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class AmmlSyntaxError(AmmlError):
    label = "syntax error"


class AmmlNameError(AmmlError):
    """An unknown component, parameter, flow, function or method."""

    label = "name error"


class AmmlTypeError(AmmlError):
    """A value of the wrong type: a parameter, a constant expression, a setting."""

    label = "type error"


class AmmlFlowError(AmmlError):
    """A workflow that cannot run: cycles, egress in the middle of a pipe, unused or undefined flows."""

    label = "flow error"


class AmmlLimitError(AmmlError):
    """Input that would cost too much to compile or evaluate: huge constants, deep nesting."""

    label = "limit exceeded"


class AmmlSafetyError(AmmlError):
    """Attempts to reach outside the callback language (attributes, dunders, unknown methods)."""

    label = "not allowed"


class AmmlRuntimeError(AmmlError):
    """A failure while evaluating a callback on data (e.g. adding a string to a number)."""

    label = "runtime error"


class AmmlCompileErrors(AmmlError):
    """Several independent errors found in one file; ``errors`` holds each of them."""

    label = "errors"

    def __init__(self, errors: list[AmmlError]) -> None:
        first = errors[0]
        super().__init__(
            f"{len(errors)} errors", filename=first.filename, line=first.line, column=first.column
        )
        self.errors = errors

    def __str__(self) -> str:
        return "\n\n".join(str(e) for e in self.errors)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidates, or None when nothing is close."""
    cutoff = 0.5 if len(name) <= 3 else 0.6  # short names: `TO` for `OT` is still a likely typo
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=cutoff)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def one_of(candidates: Iterable[str], limit: int = 12) -> str:
    """'a, b or c' (shortened with '…' when long): the valid choices for an error message."""
    items = sorted(set(candidates))
    if not items:
        return "(none)"
    shown = [f"`{c}`" for c in items[:limit]]
    if len(items) > limit:
        shown.append("…")
    return ", ".join(shown)


def read_text(path: str | Path, error: type[AmmlError] = AmmlError) -> str:
    """A source file's text (UTF-8), or `error` naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})", filename=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", filename=str(path)) from None
