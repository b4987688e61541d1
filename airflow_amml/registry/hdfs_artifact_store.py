"""Artifacts in HDFS through WebHDFS (the `hdfs` library, as used by Airflow's WebHDFSHook)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from .artifact_store import ArtifactStore, check_file_names, check_key, check_size
from .errors import ArtifactError

DEFAULT_ROOT = "/amml/models"
WEBHDFS_PORT = 9870


class HdfsArtifactStore(ArtifactStore):
    """Artifacts in HDFS through WebHDFS (the `hdfs` library, as used by Airflow's WebHDFSHook).

    URIs look like ``hdfs:///amml/models/ett/<uuid>/model.keras`` (the namenode comes from configuration)."""

    @classmethod
    def from_uri(cls, uri: str) -> HdfsArtifactStore:
        """`webhdfs://[user[:password]@]namenode[,namenode2...]:9870/root[?options]`; also `http`, `https` (WebHDFS
        over TLS) and `hdfs` naming the WebHDFS port. Several namenodes (high availability) are tried in turn by
        the client. Options, for what an Airflow `webhdfs` connection may carry (``operators/connections.py``
        writes them): ``verify=false|true|/ca.pem`` and ``cert=``/``key=`` (TLS), ``auth=kerberos``. A password
        is sent as HTTP basic authentication."""
        parsed = urlparse(uri)
        hosts = [h for h in (parsed.hostname or "").split(",") if h]
        if not hosts:
            raise ArtifactError(
                f"artifact location {uri!r} names no namenode",
                hint="write webhdfs://namenode:9870/amml/models, or configure the HDFS connection "
                "(AMML_ARTIFACT_CONN_ID) that reaches it",
            )
        options = _options(uri, parsed.query)
        scheme = "https" if parsed.scheme == "https" else "http"
        urls = ";".join(f"{scheme}://{host}:{parsed.port or WEBHDFS_PORT}" for host in hosts)
        user = unquote(parsed.username) if parsed.username else os.environ.get("HADOOP_USER_NAME") or "root"
        session = _session(user, parsed.password, options)
        root = unquote(parsed.path) or DEFAULT_ROOT
        if options.get("auth") == "kerberos":
            from hdfs.ext.kerberos import KerberosClient

            return cls(KerberosClient(urls, session=session), root)
        from hdfs import InsecureClient

        return cls(InsecureClient(urls, user=user, session=session), root)

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

    def read_bytes(self, uri: str, limit: int, scratch: Path) -> bytes:
        path = self._path(uri)
        status = self._call("status", self.client.status, path, strict=False)
        if status is None or status.get("type") != "FILE":
            raise ArtifactError(f"the file {uri} is missing from the artifact store")
        check_size(uri, int(status.get("length", 0)), limit)

        def read() -> bytes:
            with self.client.read(path, length=limit + 1) as reader:  # bounded even if it grew meanwhile
                return reader.read()

        data = self._call("read", read)
        check_size(uri, len(data), limit)
        return data

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


LOCATION_OPTIONS = ("verify", "cert", "key", "auth")


def _options(uri: str, query: str) -> dict[str, str]:
    """The location's ``?key=value`` options, each known and given once."""
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - set(LOCATION_OPTIONS))
    if unknown or any(len(values) > 1 for values in options.values()):
        raise ArtifactError(
            f"artifact location {uri!r}: unknown or repeated option(s) {unknown or sorted(options)}",
            hint=f"a WebHDFS location takes {', '.join(LOCATION_OPTIONS)}, once each",
        )
    if options.get("auth", ["kerberos"])[0] != "kerberos":
        raise ArtifactError(
            f"artifact location {uri!r}: unknown auth={options['auth'][0]!r}",
            hint="write auth=kerberos, or leave it out",
        )
    return {key: values[0] for key, values in options.items()}


def _session(user: str, password: str | None, options: dict[str, str]) -> Any:
    """The HTTP session of the client: made here, in the process that uses it (never shared across a fork)."""
    import requests

    session = requests.Session()
    if password is not None:
        session.auth = (user, unquote(password))
    if "verify" in options:
        verify = options["verify"]
        session.verify = {"false": False, "true": True}.get(verify.lower(), verify)
    if "cert" in options:
        session.cert = (options["cert"], options["key"]) if options.get("key") else options["cert"]
    return session
