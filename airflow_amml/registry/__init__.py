"""The model registry: definitions, immutable versions, aliases, tags, lineage; SQL metadata + file artifacts."""

from .artifacts import ArtifactStore, HdfsArtifactStore, LocalArtifactStore, artifact_store_for
from .errors import ArtifactError, ChecksumMismatchError, InvalidValueError, ModelNotFoundError, RegistryError
from .registry import Lineage, ModelRegistry, RegisteredVersion, parse_ref

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "ChecksumMismatchError",
    "HdfsArtifactStore",
    "InvalidValueError",
    "Lineage",
    "LocalArtifactStore",
    "ModelNotFoundError",
    "ModelRegistry",
    "RegisteredVersion",
    "RegistryError",
    "artifact_store_for",
    "parse_ref",
]
