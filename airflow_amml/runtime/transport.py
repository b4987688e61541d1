"""Moving a DataFrame batch from one component process to the next without pushing its data through a pipe.

::

    sender:   pickle.dumps(batch, protocol=5, buffer_callback=...)  ->  small header + raw column buffers
              raw buffers  --pwrite-->  /dev/shm/<run prefix><sender pid>_<n>   (one segment per receiver)
              queue.put(_Shared(header, name, offsets, sizes))                  (a few hundred bytes)
    receiver: open the segment, unlink it at once, mmap it (no copy): the buffers are views of the mapping,
              pickle.loads(header, buffers=...)  ->  the same DataFrame (dtypes, index, attrs, object columns)

* Small batches (raw buffers below ``INBAND_BYTES``) and batches whose data pickles in-band anyway (object
  columns, non-contiguous views) travel as plain pickled bytes: no shared memory.
* Lifetime: the receiver owns a segment and unlinks it as soon as it has opened it, so a segment's name only
  lives while its message is in a queue; its memory lives until the receiver drops the last array that views
  it (the kernel frees an unlinked file's pages with its last mapping). Segments left behind by a process
  killed mid-send or mid-receive, or by messages still queued when a pipeline fails, all carry the run's
  prefix; the executor's parent removes them (:func:`cleanup`) after its children are gone. Segments of a
  parent that was itself killed are removed by the next run on this host (:func:`sweep_stale`).
* ``AMML_SHM_TRANSPORT=0`` in the environment (``RunConfig.shm_transport``) turns it off: batches are put on
  the queues as they are.
* No ``multiprocessing.shared_memory`` / resource_tracker: segments are plain files on the ``/dev/shm`` tmpfs
  (what ``shm_open`` does on Linux). The sender writes with ``pwrite``, so a full tmpfs is an ``OSError`` (and
  the batch falls back to in-band) rather than a SIGBUS on a mapped page; the receiver maps a segment only
  once it is complete, and checks its size first.
* A receiver that keeps a batch (a scaler fitting on the whole stream) keeps its segment: size ``/dev/shm``
  for the data a pipeline holds (Docker's default of 64 MB is small; see ``shm_size`` in docker-compose).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

SHM_DIR = "/dev/shm"
# Below this many bytes of raw column data a batch is pickled in-band: a segment costs three syscalls.
INBAND_BYTES = 64 * 1024
# Buffers start on this boundary inside a segment (and so in the receiver's memory): aligned numpy arrays.
ALIGN = 64
NAME_PREFIX = "amml_"
# Segments of a dead parent are swept by a later run only once they are this old (seconds).
STALE_AFTER = 300.0
# Fault every page of a segment in with the mmap call itself rather than one page fault at a time.
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


@dataclass(frozen=True)
class _InBand:
    header: bytes
    buffers: tuple[bytearray, ...]  # writable: receivers get writable arrays, as with plain pickle


@dataclass(frozen=True)
class _Shared:
    header: bytes
    name: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    total: int


def new_prefix() -> str:
    """Segment-name prefix for one pipeline run: ``amml_<parent pid>_<run id>_``."""
    return f"{NAME_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}_"


class Transport:
    """Packs batches for one run. Created in the parent, inherited by the forked components."""

    def __init__(self, prefix: str | None = None, *, inband_bytes: int = INBAND_BYTES, enabled: bool = True) -> None:
        self.prefix = prefix or new_prefix()
        self.inband_bytes = inband_bytes
        self.enabled = enabled and os.path.isdir(SHM_DIR)
        self._counter = itertools.count()

    def pack(self, batch: pd.DataFrame, copies: int = 1) -> list[Any]:
        """``copies`` messages carrying ``batch``, one per receiver (each owns and unlinks its own segment)."""
        if not self.enabled:
            return [batch] * copies
        buffers: list[pickle.PickleBuffer] = []
        header = pickle.dumps(batch, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        sizes = tuple(r.nbytes for r in raws)
        if sum(sizes) < self.inband_bytes:
            inband = _InBand(header, tuple(bytearray(r) for r in raws))
            return [inband] * copies
        offsets, total = _layout(sizes)
        messages: list[Any] = []
        for _ in range(copies):
            name = f"{self.prefix}{os.getpid()}_{next(self._counter)}"
            try:
                _write_segment(name, raws, offsets)
            except OSError:  # tmpfs full or missing: this copy goes through the pipe
                messages.append(_InBand(header, tuple(bytearray(r) for r in raws)))
            else:
                messages.append(_Shared(header, name, offsets, sizes, total))
        return messages


def unpack(message: Any) -> Any:
    """The batch a message carries (``None`` and plain DataFrames pass through)."""
    if isinstance(message, _Shared):
        data = _read_segment(message.name, message.total)
        view = memoryview(data)
        buffers = [view[o : o + s] for o, s in zip(message.offsets, message.sizes, strict=True)]
        return pickle.loads(message.header, buffers=buffers)
    if isinstance(message, _InBand):
        return pickle.loads(message.header, buffers=message.buffers)
    return message


def discard(message: Any) -> None:
    """Free a message that will never be unpacked."""
    if isinstance(message, _Shared):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(SHM_DIR, message.name))


def segments(prefix: str) -> list[str]:
    """Names of the segments in ``/dev/shm`` that start with ``prefix``."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except OSError:
        return []


def cleanup(prefix: str) -> list[str]:
    """Unlink every segment left with ``prefix`` (call once no process of the run can still write)."""
    removed = []
    for name in segments(prefix):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, name))
            removed.append(name)
    return removed


_OWNER = re.compile(rf"^{NAME_PREFIX}(\d+)_[0-9a-f]+_")


def sweep_stale(older_than: float = STALE_AFTER) -> list[str]:
    """Unlink segments whose run's parent no longer exists (it was killed before it could clean up)."""
    removed = []
    now = time.time()
    for name in segments(NAME_PREFIX):
        match = _OWNER.match(name)
        if not match or _alive(int(match.group(1))):
            continue
        path = os.path.join(SHM_DIR, name)
        with contextlib.suppress(OSError):
            if now - os.stat(path).st_mtime >= older_than:
                os.unlink(path)
                removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _layout(sizes: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    offsets, at, end = [], 0, 0
    for size in sizes:
        offsets.append(at)
        end = at + size
        at += -(-size // ALIGN) * ALIGN
    return tuple(offsets), end


def _write_segment(name: str, raws: list[memoryview], offsets: tuple[int, ...]) -> None:
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for raw, offset in zip(raws, offsets, strict=True):
            done = 0
            while done < raw.nbytes:
                done += os.pwrite(fd, raw[done:], offset + done)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)


def _read_segment(name: str, total: int) -> mmap.mmap:
    """Map the segment instead of copying it: the batch's arrays are views of the tmpfs pages, which the
    kernel frees once the file is unlinked (here, at once) and the last view of the mapping is gone."""
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_RDWR)
    try:
        os.unlink(path)  # ours now: nothing else will ever open it, and it is freed when the mapping goes
        size = os.fstat(fd).st_size
        if size < total:  # mapping past the end of a file would SIGBUS on first touch: refuse it here
            raise OSError(f"shared-memory segment {name} is truncated ({size} of {total} bytes)")
        # Writable, as plain pickle's arrays are. Shared, not private: the file is unlinked, so no one else
        # sees a write, and a private writable mapping would copy every page when populated.
        return mmap.mmap(fd, total, flags=mmap.MAP_SHARED | _MAP_POPULATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
