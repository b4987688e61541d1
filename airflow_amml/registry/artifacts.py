"""Where model files live: a local folder (the embedded default) or HDFS through WebHDFS.

Every write goes to a new, unique folder (its *key*, `name/<uuid>`, chosen by the registry), first under a
temporary name and then renamed, so a reader never sees half a file and two trainings never overwrite each
other. A store touches nothing outside its root: a key or URI that would resolve elsewhere (`..`, an absolute
path, a symbolic link out of the root) is refused, whatever the registry above it checked already.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

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


class ArtifactStore(ABC):
    """Stores files under URIs it hands out, grouped in folders named by keys."""

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

    def delete(self, uri: str) -> None:
        """Remove the file at `uri` and its unique folder."""
        self.delete_folder(self.key_of(uri))

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
        path = Path(root).expanduser()
        if not path.is_absolute():
            raise ArtifactError(
                f"the artifact root {str(root)!r} is a relative path: it would depend on the folder each "
                "process happens to start in",
                hint=f"give an absolute folder, e.g. AMML_ARTIFACTS={Path(root).absolute()}",
            )
        self.root = path

    def _inside_root(self, path: Path, what: str) -> Path:
        root = self.root.resolve()
        resolved = path.resolve()
        if root not in resolved.parents:
            raise ArtifactError(
                f"{what} resolves to {resolved}, outside the artifact root {root}",
                hint="this store only reads and writes inside its root; check AMML_ARTIFACTS",
            )
        return path

    def _folder(self, key: str) -> Path:
        return self._inside_root(self.root.joinpath(*check_key(key)), f"artifact key {key!r}")

    def _path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ArtifactError(f"{uri} is not a local file:// URI; this registry stores artifacts in {self.root}")
        return self._inside_root(Path(unquote(parsed.path)), uri)  # as_uri() quotes spaces, `@`, `#`, ...

    def folder_uri(self, key: str) -> str:
        return self._folder(key).as_uri()

    def put(self, files: list[Path], key: str) -> list[str]:
        check_file_names(files)
        folder = self._folder(key)
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir()  # a new folder, never an existing one: only what this call created is removed below
        except OSError as exc:
            raise ArtifactError(f"cannot create the model folder {folder}: {exc.strerror or exc}") from exc
        uris = []
        try:
            for local_path in files:
                final = folder / Path(local_path).name
                tmp = folder / f".{final.name}.part"
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

    def key_of(self, uri: str) -> str:
        folder = self._path(uri).parent
        return folder.resolve().relative_to(self.root.resolve()).as_posix()

    def list_folder(self, key: str) -> list[str]:
        folder = self._folder(key)
        if not folder.is_dir():
            return []
        return sorted(p.as_uri() for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def delete_folder(self, key: str) -> None:
        folder = self._folder(key)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ArtifactError(f"cannot remove {folder}: {exc.strerror or exc}") from exc

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
        if not isinstance(root, str) or not root.startswith("/"):
            raise ArtifactError(
                f"the HDFS artifact root {root!r} is not an absolute path", hint='use e.g. "/amml/models"'
            )
        self.client = client
        self.root = posixpath.normpath(root)

    def _folder(self, key: str) -> str:
        return posixpath.join(self.root, *check_key(key))

    def _path(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "hdfs":
            raise ArtifactError(f"{uri} is not an hdfs:// URI")
        path = posixpath.normpath(unquote(parsed.path))
        if not path.startswith(self.root.rstrip("/") + "/"):
            raise ArtifactError(
                f"{uri} is outside the artifact root {self.root}",
                hint="this store only reads and writes inside its root; check the connection's `root` extra",
            )
        return path

    @staticmethod
    def _uri(path: str) -> str:
        return f"hdfs://{quote(path)}"

    def _call(self, what: str, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except Exception as exc:  # hdfs raises HdfsError, requests raises ConnectionError, ...
            raise ArtifactError(f"HDFS {what} failed: {type(exc).__name__}: {exc}") from exc

    def folder_uri(self, key: str) -> str:
        return self._uri(self._folder(key))

    def put(self, files: list[Path], key: str) -> list[str]:
        check_file_names(files)
        folder = self._folder(key)
        uris = []
        try:
            for local_path in files:
                final = f"{folder}/{Path(local_path).name}"
                tmp = f"{folder}/.{Path(local_path).name}.part"
                self._call("upload", self.client.upload, tmp, str(local_path), overwrite=False)
                self._call("rename", self.client.rename, tmp, final)
                uris.append(self._uri(final))
        except ArtifactError:
            self._best_effort_delete(folder)
            raise
        return uris

    def get(self, uri: str, local_path: Path) -> None:
        self._call("download", self.client.download, self._path(uri), str(local_path), overwrite=True)

    def key_of(self, uri: str) -> str:
        return posixpath.dirname(self._path(uri))[len(self.root.rstrip("/")) + 1 :]

    def list_folder(self, key: str) -> list[str]:
        folder = self._folder(key)
        if self._call("list", self.client.status, folder, strict=False) is None:
            return []
        entries = self._call("list", self.client.list, folder, status=True)
        return sorted(
            self._uri(f"{folder}/{entry}")
            for entry, info in entries
            if info.get("type") == "FILE" and not entry.startswith(".")
        )

    def delete_folder(self, key: str) -> None:
        folder = self._folder(key)
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
                        yield self._uri(f"{folder}/{entry}"), info.get("modificationTime", 0) / 1000.0


def artifact_store_for(location: str) -> ArtifactStore:
    """`/path` or `file:///path` → local folder; `webhdfs://host:port/root` → HDFS via WebHDFS."""
    try:
        parsed = urlparse(location)
        port = parsed.port
    except ValueError as exc:  # a port that is not a number, a malformed IPv6 host
        raise ArtifactError(
            f"artifact location {location!r} is not a valid URL: {exc}",
            hint="use a folder, file:///folder or webhdfs://namenode:9870/amml/models",
        ) from exc
    if parsed.scheme == "":
        return LocalArtifactStore(location)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ArtifactError(
                f"artifact location {location!r} names a host ({parsed.netloc}) or a relative path",
                hint="write file:///absolute/folder (three slashes)",
            )
        return LocalArtifactStore(unquote(parsed.path))
    if parsed.scheme in ("webhdfs", "http", "https"):
        if not parsed.hostname:
            raise ArtifactError(
                f"artifact location {location!r} names no namenode", hint="write webhdfs://namenode:9870/amml/models"
            )
        from hdfs import InsecureClient

        scheme = "https" if parsed.scheme == "https" else "http"
        user = parsed.username or os.environ.get("HADOOP_USER_NAME") or "root"
        client = InsecureClient(f"{scheme}://{parsed.hostname}:{port or 9870}", user=user)
        return HdfsArtifactStore(client, unquote(parsed.path) or "/amml/models")
    raise ArtifactError(f"unknown artifact location {location!r}; use a folder, file://... or webhdfs://host:port/path")
