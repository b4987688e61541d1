"""Errors raised while running a pipeline."""

from __future__ import annotations

import signal

from compiler.errors import SourceError


class PipelineError(SourceError):
    """A pipeline failed while running: names the component, its position and the original traceback."""

    label = "pipeline failed"

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        traceback: str | None = None,
        line: int | None = None,
        column: int | None = None,
        filename: str = "<pipeline>",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, filename=filename, line=line, column=column, hint=hint)
        self.component = component
        self.remote_traceback = traceback

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nOriginal traceback (in the component's process):\n" + self.remote_traceback.rstrip()
        return text


class Terminated(BaseException):
    """SIGTERM/SIGINT: raised in the executor (so that `finally` blocks stop every child) and by `amml` itself;
    ``signum`` says which (a command line exits with 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum

    def __reduce__(self) -> tuple:
        return (Terminated, (self.signum,))  # (the default would rebuild it from its message)
