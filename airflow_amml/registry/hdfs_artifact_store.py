"""Artifacts in HDFS through WebHDFS (the `hdfs` library, as used by Airflow's WebHDFSHook)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from .artifact_store import ArtifactStore, check_file_names, check_key
from .errors import ArtifactError

DEFAULT_ROOT = "/amml/models"
WEBHDFS_PORT = 9870


class HdfsArtifactStore(ArtifactStore):
    """Artifacts in HDFS through WebHDFS (the `hdfs` library, as used by Airflow's WebHDFSHook).

    URIs look like ``hdfs:///amml/models/ett/<uuid>/model.keras`` (the namenode comes from configuration)."""

    @classmethod
    def from_uri(cls, uri: str) -> HdfsArtifactStore:
        """`webhdfs://[user@]namenode:9870/root` (also `http`, `https`, and `hdfs` naming the WebHDFS port)."""
        parsed = urlparse(uri)
        if not parsed.hostname:
            raise ArtifactError(
                f"artifact location {uri!r} names no namenode",
                hint="write webhdfs://namenode:9870/amml/models, or configure the HDFS connection "
                "(AMML_ARTIFACT_CONN_ID) that reaches it",
            )
        from hdfs import InsecureClient

        scheme = "https" if parsed.scheme == "https" else "http"
        user = parsed.username or os.environ.get("HADOOP_USER_NAME") or "root"
        client = InsecureClient(f"{scheme}://{parsed.hostname}:{parsed.port or WEBHDFS_PORT}", user=user)
        return cls(client, unquote(parsed.path) or DEFAULT_ROOT)

    def __init__(self, client: object, root: str = DEFAULT_ROOT) -> None:
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

    def at_root(self, root_uri: str) -> HdfsArtifactStore | None:
        parsed = urlparse(root_uri)
        if parsed.scheme != "hdfs" or parsed.netloc:
            return None
        return type(self)(self.client, unquote(parsed.path))  # same namenode, the version's own root

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
