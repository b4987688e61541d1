"""The contract of an artifact store: where a version's files live (`local_artifact_store.py`, a folder, the
embedded default; `hdfs_artifact_store.py`, HDFS through WebHDFS; or a third party's store, registered for a
URI scheme in `artifact_store_registry.py`).

Every write goes to a new, unique folder (its *key*, `name/<uuid>`, chosen by the registry), first under a
temporary name and then renamed, so a reader never sees half a file and two trainings never overwrite each
other. A store touches nothing outside its root: a key or URI that would resolve elsewhere (`..`, an absolute
path, a symbolic link out of the root) is refused, whatever the registry above it checked already.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from .errors import ArtifactError

CHUNK = 1 << 20
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def sha256_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def check_key(key: str) -> list[str]:
    """The segments of a relative folder key such as `ett/<uuid>`; anything that could climb out is refused."""
    segments = key.split("/") if isinstance(key, str) else []
    if not segments or any(s in ("", ".", "..") or _CONTROL_RE.search(s) or "\\" in s for s in segments):
        raise ArtifactError(
            f"artifact key {key!r} is not a relative folder inside the artifact root",
            hint="model names may not contain `/`, `..` or control characters",
        )
    return segments


def check_file_names(files: list[Path]) -> None:
    """Stored files keep their base names: they must be plain, distinct and visible."""
    names = [Path(f).name for f in files]
    for name in names:
        if not name or name.startswith(".") or _CONTROL_RE.search(name) or len(name.encode()) > 200:
            raise ArtifactError(
                f"cannot store a file named {name!r}",
                hint="rename it: a file name must not start with `.`, contain control characters or exceed 200 bytes",
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ArtifactError(
            f"two files of one version are both named {duplicates[0]!r}", hint="give each file its own name"
        )


def check_size(uri: str, size: int, limit: int) -> None:
    if size > limit:
        raise ArtifactError(
            f"the stored file {uri} is {size} bytes; at most {limit} are served",
            hint="this is not a plot the registry wrote: re-register the version with its plots",
        )


def artifact_root_of(uri: str) -> str:
    """The root URI of the store that wrote the file `uri`: every stored file is `<root>/<name>/<uuid>/<file>`
    (a model name has no `/`), so a version's own URI says where it was written, whatever is configured now."""
    root, *rest = uri.rsplit("/", 3)
    if len(rest) != 3 or not all(rest):
        raise ArtifactError(
            f"{uri} is not the URI of a stored model file (expected ROOT/NAME/FOLDER/FILE)",
            hint="this version's row was not written by the registry; re-register the model",
        )
    return root


class ArtifactStore(ABC):
    """Stores files under URIs it hands out, grouped in folders named by keys.

    A store registered for a URI scheme (`artifact_store_registry.py`, entry point group
    `amml.artifact_stores`) also implements :meth:`from_uri`, which opens the store rooted at a location
    such as `file:///srv/amml/models`."""

    @classmethod
    def from_uri(cls, uri: str) -> ArtifactStore:
        """The store rooted at the location `uri` (raises ArtifactError, with a hint, on a bad location)."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URI")

    @abstractmethod
    def folder_uri(self, key: str) -> str:
        """The URI of the folder `key` (it need not exist)."""

    @abstractmethod
    def put(self, files: list[Path], key: str) -> list[str]:
        """Copy local files into the new folder `key`; return their URIs (same order)."""

    @abstractmethod
    def get(self, uri: str, local_path: Path) -> None:
        """Copy the file at `uri` to `local_path`."""

    @abstractmethod
    def key_of(self, uri: str) -> str:
        """The key of the folder holding the stored file `uri` (refused when `uri` is outside the root)."""

    @abstractmethod
    def list_folder(self, key: str) -> list[str]:
        """URIs of the files in folder `key`; empty when it does not exist."""

    @abstractmethod
    def delete_folder(self, key: str) -> None:
        """Remove folder `key` and everything in it; missing is fine, failing raises ArtifactError."""

    @abstractmethod
    def list_uris(self) -> Iterator[tuple[str, float]]:
        """Every stored artifact as (uri, modification time in epoch seconds)."""

    def holds(self, uri: str) -> bool:
        """Whether `uri` is a file under this store's root (so this store may read it)."""
        try:
            self.key_of(uri)
        except ArtifactError:
            return False
        return True

    def at_root(self, root_uri: str) -> ArtifactStore | None:
        """This kind of store, over this store's connection, rooted at `root_uri`; None when it cannot reach it.

        How a version is read after the configured root moved, when its URI alone does not say how to connect
        (an `hdfs:///...` URI names no namenode)."""
        return None

    def delete(self, uri: str) -> None:
        """Remove the file at `uri` and its unique folder."""
        self.delete_folder(self.key_of(uri))

    def read_bytes(self, uri: str, limit: int, scratch: Path) -> bytes:
        """The content of the small stored file `uri` (a plot), refused when larger than `limit` bytes.

        This default copies it to `scratch` first (disk, never unbounded memory); the built-in stores
        override it to check the size before reading anything."""
        target = scratch / f"read-{uuid.uuid4().hex}"
        try:
            self.get(uri, target)
            check_size(uri, target.stat().st_size, limit)
            return target.read_bytes()
        finally:
            target.unlink(missing_ok=True)

    def checksum(self, uri: str, scratch: Path) -> tuple[int, str]:
        """(size, sha256) of a stored file, by reading it back."""
        target = scratch / f"verify-{uuid.uuid4().hex}"
        try:
            self.get(uri, target)
            return sha256_file(target)
        finally:
            target.unlink(missing_ok=True)
