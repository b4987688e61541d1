"""Where model files live: a local folder (the embedded default) or HDFS through WebHDFS.

Every write goes to a new, unique path, first under a temporary name and then renamed, so a reader never
sees half a file and two trainings never overwrite each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from .errors import ArtifactError

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class ArtifactStore(ABC):
    """Stores files under URIs it hands out."""

    @abstractmethod
    def put(self, files: list[Path], name: str) -> list[str]:
        """Copy local files into one new, unique folder for model `name`; return their URIs (same order)."""

    @abstractmethod
    def get(self, uri: str, local_path: Path) -> None:
        """Copy the file at `uri` to `local_path`."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the file (and its unique folder); missing is fine."""

    @abstractmethod
    def list_uris(self) -> Iterator[tuple[str, float]]:
        """Every stored artifact as (uri, modification time in epoch seconds): for garbage collection."""

    def checksum(self, uri: str, scratch: Path) -> tuple[int, str]:
        """(size, sha256) of a stored file, by reading it back."""
        target = scratch / f"verify-{uuid.uuid4().hex}"
        try:
            self.get(uri, target)
            return sha256_file(target)
        finally:
            target.unlink(missing_ok=True)


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactError(f"{uri} is not a file:// URI; this registry stores artifacts in {self.root}")
        return Path(parsed.path)

    def put(self, files: list[Path], name: str) -> list[str]:
        folder = self.root / name / uuid.uuid4().hex
        uris = []
        try:
            folder.mkdir(parents=True, exist_ok=False)
            for local_path in files:
                final = folder / local_path.name
                tmp = folder / f".{local_path.name}.part"
                shutil.copyfile(local_path, tmp)
                os.replace(tmp, final)
                uris.append(final.as_uri())
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ArtifactError(f"cannot write the model files to {folder}: {exc.strerror or exc}") from exc
        return uris

    def get(self, uri: str, local_path: Path) -> None:
        source = self._path(uri)
        if not source.is_file():
            raise ArtifactError(f"the model file {uri} is missing from the artifact store")
        try:
            shutil.copyfile(source, local_path)
        except OSError as exc:
            raise ArtifactError(f"cannot copy {uri} to {local_path}: {exc.strerror or exc}") from exc

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        shutil.rmtree(path.parent, ignore_errors=True)

    def list_uris(self) -> Iterator[tuple[str, float]]:
        if not self.root.exists():
            return
        for path in self.root.glob("*/*/*"):
            if path.is_file() and not path.name.startswith("."):
                yield path.as_uri(), path.stat().st_mtime


class HdfsArtifactStore(ArtifactStore):
    """Artifacts in HDFS through WebHDFS (the `hdfs` library, as used by Airflow's WebHDFSHook).

    URIs look like ``hdfs:///amml/models/ett/<uuid>/model.keras`` (the namenode comes from configuration)."""

    def __init__(self, client: object, root: str = "/amml/models") -> None:
        self.client = client
        self.root = root.rstrip("/")

    @staticmethod
    def _path(uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "hdfs":
            raise ArtifactError(f"{uri} is not an hdfs:// URI")
        return parsed.path

    def _call(self, what: str, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except Exception as exc:  # hdfs raises HdfsError, requests raises ConnectionError, ...
            raise ArtifactError(f"HDFS {what} failed: {type(exc).__name__}: {exc}") from exc

    def put(self, files: list[Path], name: str) -> list[str]:
        folder = f"{self.root}/{name}/{uuid.uuid4().hex}"
        uris = []
        try:
            for local_path in files:
                final = f"{folder}/{local_path.name}"
                tmp = f"{folder}/.{local_path.name}.part"
                self._call("upload", self.client.upload, tmp, str(local_path), overwrite=False)
                self._call("rename", self.client.rename, tmp, final)
                uris.append(f"hdfs://{final}")
        except ArtifactError:
            self._best_effort_delete(folder)
            raise
        return uris

    def get(self, uri: str, local_path: Path) -> None:
        self._call("download", self.client.download, self._path(uri), str(local_path), overwrite=True)

    def delete(self, uri: str) -> None:
        folder = self._path(uri).rsplit("/", 1)[0]
        self._call("delete", self.client.delete, folder, recursive=True)

    def _best_effort_delete(self, folder: str) -> None:
        try:
            self.client.delete(folder, recursive=True)
        except Exception:
            pass

    def list_uris(self) -> Iterator[tuple[str, float]]:
        status = self._call("list", self.client.status, self.root, strict=False)
        if status is None:
            return
        for name in self._call("list", self.client.list, self.root):
            for version_dir in self._call("list", self.client.list, f"{self.root}/{name}"):
                folder = f"{self.root}/{name}/{version_dir}"
                for entry, info in self._call("list", self.client.list, folder, status=True):
                    if info.get("type") == "FILE" and not entry.startswith("."):
                        yield f"hdfs://{folder}/{entry}", info.get("modificationTime", 0) / 1000.0


def artifact_store_for(location: str) -> ArtifactStore:
    """`/path` or `file:///path` → local folder; `webhdfs://host:port/root` → HDFS via WebHDFS."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return LocalArtifactStore(parsed.path if parsed.scheme else location)
    if parsed.scheme in ("webhdfs", "http", "https"):
        from hdfs import InsecureClient

        scheme = "https" if parsed.scheme == "https" else "http"
        user = parsed.username or os.environ.get("HADOOP_USER_NAME") or "root"
        client = InsecureClient(f"{scheme}://{parsed.hostname}:{parsed.port or 9870}", user=user)
        return HdfsArtifactStore(client, parsed.path or "/amml/models")
    raise ArtifactError(f"unknown artifact location {location!r}; use a folder, file://... or webhdfs://host:port/path")
