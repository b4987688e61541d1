"""One rooted error hierarchy for everything a user can get wrong: an AMML file, a model's YAML, a run, the registry.

:class:`AmmlError` is the root: what is wrong and, as a hint, how to fix it (usually "did you mean ...?").
An error in a file is a :class:`SourceError`: it carries the file, line and column and renders the
offending source line with a caret under the column. The shape follows lark's ``get_context``
and bytewax's "what is wrong; what was received; how to fix it" messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class AmmlError(Exception):
    """Root of every error caused by what a user wrote or configured: a message, and a hint how to fix it.

    The root has no position: an error in a file is a :class:`SourceError`; one about something else names
    its ``subject`` (``"model registry"``) instead of pretending to be a file.
    """

    label = "error"
    subject: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def location(self) -> str | None:
        """Where the error is, as the first words of its text (None: nowhere in particular)."""
        return self.subject

    def context(self) -> str:
        return ""

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        parts = [f"{head}{self.label}: {self.message}"]
        ctx = self.context()
        if ctx:
            parts.append(ctx)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class SourceError(AmmlError):
    """An error at a place in a source file (an AMML file, a model's YAML, the component a run names): its
    text starts with ``file:line:column`` and shows the line with a caret under the column."""

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
        super().__init__(message, hint=hint)
        self.filename = filename
        self.line = line
        self.column = column
        self.source = source

    def located(self, filename: str, source: str | None) -> SourceError:
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
        """The source line with a caret under the column, or '' when unknown. A long line is cut to
        CONTEXT_WIDTH characters either side of the caret (a 1 MB line with 100 errors must not print 100 MB)."""
        if self.source is None or self.line is None:
            return ""
        bounds = _line_bounds(self.source, self.line)
        if bounds is None:
            return ""
        line_start, line_end = bounds
        length = line_end - line_start
        col = max(1, min(self.column or 1, length + 1))
        start, end = max(0, col - 1 - CONTEXT_WIDTH), min(length, col - 1 + CONTEXT_WIDTH)
        excerpt = self.source[line_start + start:line_start + end].expandtabs(1)  # a tab keeps its column
        shown = ("…" if start else "") + excerpt + ("…" if end < length else "")
        caret = col - start + (1 if start else 0)
        gutter = f"{self.line:>4} | "
        return f"{gutter}{shown}\n{' ' * (len(gutter) - 2)}| {' ' * (caret - 1)}^"


CONTEXT_WIDTH = 60  # characters of a long source line shown on each side of the caret


def _line_bounds(source: str, line: int) -> tuple[int, int] | None:
    """Where line ``line`` (1-based) of ``source`` starts and ends, found without copying the text; the
    parser counts only \\n as a line break."""
    if line < 1:
        return None
    start = 0
    for _ in range(line - 1):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    end = source.find("\n", start)
    return start, len(source) if end < 0 else end


class AmmlSyntaxError(SourceError):
    label = "syntax error"


class AmmlNameError(SourceError):
    """An unknown component, parameter, flow, function or method."""

    label = "name error"


class AmmlTypeError(SourceError):
    """A value of the wrong type: a parameter, a constant expression, a setting."""

    label = "type error"


class AmmlFlowError(SourceError):
    """A workflow that cannot run: cycles, egress in the middle of a pipe, unused or undefined flows."""

    label = "flow error"


class AmmlLimitError(SourceError):
    """Input that would cost too much to compile or evaluate: huge constants, deep nesting."""

    label = "limit exceeded"


class AmmlSafetyError(SourceError):
    """Attempts to reach outside the callback language (attributes, dunders, unknown methods)."""

    label = "not allowed"


class AmmlRuntimeError(SourceError):
    """A failure while evaluating a callback on data (e.g. adding a string to a number)."""

    label = "runtime error"


class AmmlCompileErrors(SourceError):
    """Several independent errors found in one file; ``errors`` holds each of them."""

    label = "errors"

    def __init__(self, errors: list[SourceError]) -> None:
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


def read_text(path: str | Path, error: type[SourceError] = SourceError) -> str:
    """A source file's text (UTF-8), or `error` naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})", filename=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", filename=str(path)) from None
