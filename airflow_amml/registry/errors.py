"""Registry errors: each says what failed and what exists."""

from __future__ import annotations

from compiler.errors import AmmlError


class RegistryError(AmmlError):
    """A registry operation that failed: about the registry, not a place in a file."""

    label = "registry error"
    subject = "model registry"


class ModelNotFoundError(RegistryError):
    label = "model not found"


class InvalidValueError(RegistryError):
    """A name, reference, tag, metric or lineage value the registry refuses (the caller's mistake: HTTP 400)."""

    label = "invalid value"


class ArtifactError(RegistryError):
    label = "artifact store error"


class ChecksumMismatchError(ArtifactError):
    label = "corrupted model file"
