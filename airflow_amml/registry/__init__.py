"""The model registry: definitions, immutable versions, aliases, tags, lineage; SQL metadata + file artifacts
in a store chosen by URI scheme (built-ins, then the `amml.artifact_stores` entry points)."""

from .artifact_store import ArtifactStore
from .artifact_store_registry import ArtifactStoreRegistry, artifact_store_for, register_artifact_store
from .errors import ArtifactError, ChecksumMismatchError, InvalidValueError, ModelNotFoundError, RegistryError
from .hdfs_artifact_store import HdfsArtifactStore
from .local_artifact_store import LocalArtifactStore
from .registry import AliasChange, Lineage, ModelRegistry, RegisteredVersion, parse_ref

__all__ = [
    "AliasChange",
    "ArtifactError",
    "ArtifactStore",
    "ArtifactStoreRegistry",
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
    "register_artifact_store",
]
