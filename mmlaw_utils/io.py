"""File helpers shared by every stage: atomic writes, sha256 of files, marked-region replacement.

Every write is atomic: a temp file in the same folder, fsync, then ``os.replace``, so a file
is either absent, the old one or the complete new one, whatever kills the process.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

# read once: os.umask can only be queried by setting it
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_HASH_BLOCK_BYTES = 4 * 2**20


@contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on clean exit fsync and rename it onto ``path``.

    ``path`` is therefore either absent, the old file or the complete new one, whatever
    kills the process. The file gets the usual umask permissions (mkstemp would leave 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_table(table: pa.Table, path: str | Path, **options: Any) -> None:
    """Write a parquet table atomically (see ``atomic_output``); ``options`` go to ``pyarrow.parquet.write_table``."""
    with atomic_output(path) as handle:
        pq.write_table(table, handle, **options)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text (UTF-8) atomically (see ``atomic_output``)."""
    with atomic_output(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes atomically (see ``atomic_output``)."""
    with atomic_output(path) as handle:
        handle.write(data)


class ExclusiveLock:
    """Exclusive, non-blocking ``fcntl`` lock on the file ``path``; a second holder gets ``RuntimeError(busy)``.

    ``busy`` may name ``{holder}``: the process id the current holder wrote into the lock file. The kernel
    drops the lock when the process dies (even by kill -9), so a crashed run never leaves a stale lock.
    """

    def __init__(self, path: str | Path, busy: str):
        self.path = Path(path)
        self.busy = busy
        self._handle: IO[str] | None = None

    def __enter__(self) -> "ExclusiveLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RuntimeError(self.busy.format(holder=holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc_info: object) -> None:
        import fcntl

        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def update_with_file(digest: Any, path: str | Path) -> Any:
    """Feed the bytes of file ``path`` into the hashlib object ``digest`` in 4 MiB blocks; return it."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK_BYTES), b""):
            digest.update(block)
    return digest


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    return update_with_file(hashlib.sha256(), path).hexdigest()


def replace_marked_region(text: str, block: str, start: str, end: str) -> str:
    """``text`` with everything between the ``start`` and ``end`` markers replaced by ``block``.

    The markers stay; ``block`` sits on its own lines between them. Raises ValueError naming
    the markers when they are missing or out of order.
    """
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"markers {start!r} ... {end!r} not found (in that order)")
    return text[: i + len(start)] + "\n" + block.strip() + "\n" + text[j:]


def write_marked_region(path: str | Path, block: str, start: str, end: str, *, append_if_missing: bool = False,
                        new_file_text: str = "") -> None:
    """Atomically replace the region between ``start`` and ``end`` in the file ``path`` by ``block``.

    With ``append_if_missing`` a file without the markers (or no file: ``new_file_text``) gets
    the marked region appended; otherwise missing markers raise ValueError naming the file.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else new_file_text
    if append_if_missing and (start not in text or end not in text):
        text = text.rstrip("\n") + "\n\n" + f"{start}\n{end}\n"
    try:
        atomic_write_text(path, replace_marked_region(text, block, start, end))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
