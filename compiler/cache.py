"""Compiled programs cached by content hash: in memory, and optionally in a directory.

The key covers the compiler version, the component declarations, the file name and the text, so an edit
anywhere invalidates exactly the programs it affects. A corrupt or stale cache entry is ignored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .bytecode import FORMAT_VERSION, Program

COMPILER_VERSION = f"amml-compiler-{FORMAT_VERSION}.1"


def cache_key(text: str, filename: str, registry_fingerprint: str) -> str:
    h = hashlib.sha256()
    for part in (COMPILER_VERSION, registry_fingerprint, filename, text):
        h.update(part.encode("utf-8", "surrogatepass"))  # any str hashes, even one with lone surrogates
        h.update(b"\0")
    return h.hexdigest()


class ProgramCache:
    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self._memory: dict[str, Program] = {}
        self.used: set[str] = set()  # keys looked up or stored by this instance (see prune)

    def get(self, key: str) -> Program | None:
        self.used.add(key)
        program = self._memory.get(key)
        if program is not None or self.directory is None:
            return program
        try:
            program = Program.from_json((self.directory / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._memory[key] = program
        return program

    def prune(self, keep: set[str], older_than: float = 86400.0) -> int:
        """Delete on-disk entries not in `keep` and not used for `older_than` seconds (edited files leave their
        old programs behind). Returns how many were removed."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        import time

        removed = 0
        cutoff = time.time() - older_than
        for path in self.directory.glob("*.json"):
            try:
                if path.stem not in keep and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def put(self, key: str, program: Program) -> None:
        self.used.add(key)
        self._memory[key] = program
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # write-then-rename: a reader never sees half a file, even with parallel DAG processors
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(program.to_json())
            os.replace(tmp, self.directory / f"{key}.json")
        except (OSError, ValueError):  # ValueError: a str json cannot write (the parser refuses them anyway)
            pass  # the cache is an optimisation; a read-only disk must not break compiling
