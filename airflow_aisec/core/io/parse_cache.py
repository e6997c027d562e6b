"""Parses of local files kept for a gate's later reads, served only while the bytes they came from are unchanged.

A gate opens one file more than once (its schema, then its batches; the same file as data and as
reference), and a wide file's parse costs up to a second, so the last few parses are kept. An entry is
found by the file's identity (device, inode, size, modification and change times), but identity is no
proof: a rewrite of the same size within one timestamp tick (~4 ms here, seconds on some file systems)
keeps it, and a later check in the same process (``dag.test()``, library use) would then be served the
earlier content, a pass on bytes it never read. So an entry keeps the bytes it was parsed from (a
footer, a small file), and they are read again and compared before it is served: a few milliseconds
against the parse's hundreds, and no clock to trust.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple

from airflow_aisec.core.io.files import open_user_file
from airflow_aisec.exceptions import AisecError


def file_identity(st: os.stat_result) -> tuple[int, ...]:
    """What finds a file's entry (device, inode, size, modification and change times): not proof of
    its content."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Source(NamedTuple):
    """The bytes a parse was made from: ``data`` read at ``offset`` of the file."""

    offset: int
    data: bytes


class ParseCache:
    """The last ``kept`` parses, by a caller's key (a file's identity and what else the parse depended on).

    A parse whose source is longer than ``max_source_bytes`` is not kept: the cache holds at most
    ``kept`` sources of that size, whatever the files.
    """

    def __init__(self, kept: int, max_source_bytes: int) -> None:
        self._kept = kept
        self._max_source_bytes = max_source_bytes
        self._entries: dict[Any, tuple[Any, Source]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, path: str | os.PathLike[str]) -> Any | None:
        """The parse kept under ``key``, if ``path`` still holds the bytes it was made from; else None
        (and the entry is dropped)."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return None
        value, source = entry
        if not source_unchanged(path, source):
            return None
        self._keep(key, entry)
        return value

    def put(self, key: Any, value: Any, source: Source) -> None:
        if len(source.data) <= self._max_source_bytes:
            self._keep(key, (value, source))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _keep(self, key: Any, entry: tuple[Any, Source]) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry  # the newest last
            for old in list(self._entries)[:-self._kept]:
                del self._entries[old]


def source_unchanged(path: str | os.PathLike[str], source: Source) -> bool:
    """Whether ``path`` holds ``source.data`` at ``source.offset`` (a read of its length: bounded when
    the parse read it). A path that is no longer a regular file does not (it is never opened)."""
    try:
        with open_user_file(path, "data file") as fh:
            fh.seek(source.offset)
            return fh.read(len(source.data)) == source.data
    except (OSError, AisecError):
        return False  # the read that follows reports it
