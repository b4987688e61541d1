"""Artifacts in a local folder: the embedded default (`$AMML_HOME/artifacts`), and the store tests use."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from .artifact_store import ArtifactStore, check_file_names, check_key, check_size
from .errors import ArtifactError


class LocalArtifactStore(ArtifactStore):
    """Files under a local folder; URIs look like ``file:///srv/amml/models/ett/<uuid>/model.keras``."""

    @classmethod
    def from_uri(cls, uri: str) -> LocalArtifactStore:
        """`/folder` or `file:///folder` (quoted as `Path.as_uri()` quotes it)."""
        parsed = urlparse(uri)
        if parsed.scheme == "":
            return cls(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ArtifactError(
                f"artifact location {uri!r} names a host ({parsed.netloc}) or a relative path",
                hint="write file:///absolute/folder (three slashes)",
            )
        return cls(unquote(parsed.path))

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

    def read_bytes(self, uri: str, limit: int, scratch: Path) -> bytes:
        source = self._path(uri)
        try:
            with open(source, "rb") as fh:
                data = fh.read(limit + 1)  # one byte more than allowed tells a file that is too large
        except FileNotFoundError:
            raise ArtifactError(f"the file {uri} is missing from the artifact store") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {uri}: {exc.strerror or exc}") from exc
        check_size(uri, len(data) if len(data) <= limit else source.stat().st_size, limit)
        return data

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
