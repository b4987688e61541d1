"""Registry errors: each says what failed and what exists."""

from __future__ import annotations

from compiler.errors import AmmlError


class RegistryError(AmmlError):
    label = "registry error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, filename="model registry", hint=hint)


class ModelNotFoundError(RegistryError):
    label = "model not found"


class InvalidValueError(RegistryError):
    """A name, reference, tag, metric or lineage value the registry refuses (the caller's mistake: HTTP 400)."""

    label = "invalid value"


class ArtifactError(RegistryError):
    label = "artifact store error"


class ChecksumMismatchError(ArtifactError):
    label = "corrupted model file"
