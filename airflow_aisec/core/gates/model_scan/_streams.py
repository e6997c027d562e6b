"""Byte streams for the static analysis: a capped reader, streaming zlib, re-attached sniffed heads,
and the exceptions that make a file unscannable (fail closed)."""

from __future__ import annotations

import io
import re
import zlib
from typing import IO, Any

_QUOTED = re.compile(r"b?'(?:[^'\\]|\\.)*'" r'|b?"(?:[^"\\]|\\.)*"')


class Reader:
    """Read-only stream with position, skip and a hard cap on bytes produced (decompression bombs)."""

    def __init__(self, raw: IO[bytes], *, limit: int | None = None, size: int | None = None) -> None:
        self._raw = raw
        self._limit = limit
        self.size = size
        self.pos = 0

    def _account(self, n: int) -> None:
        self.pos += n
        if self._limit is not None and self.pos > self._limit:
            raise Unscannable(f"decompressed content exceeds {self._limit} bytes")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = (self._limit - self.pos + 1) if self._limit is not None else -1
        if self.size is not None and n > self.size - self.pos + 1:
            n = max(self.size - self.pos + 1, 0)  # never allocate past the end of the data
        if self._limit is not None and n > self._limit - self.pos + 1:
            # A pickle declares its constants' lengths: never allocate past the cap (one byte over trips it).
            n = max(self._limit - self.pos + 1, 0)
        data = self._raw.read(n)
        self._account(len(data))
        return data

    def readline(self) -> bytes:
        line = self._raw.readline(1 << 20)
        self._account(len(line))
        return line

    def tell(self) -> int:
        return self.pos

    def skip(self, n: int) -> None:
        if n <= 0:
            return
        if self.size is not None and self.pos + n > self.size:
            raise Unscannable("declared array data runs past the end of the file")
        remaining = n
        while remaining:
            chunk = self._raw.read(min(remaining, 8 << 20))
            if not chunk:
                raise Unscannable("declared array data runs past the end of the file")
            remaining -= len(chunk)
            self._account(len(chunk))

    def at_eof(self) -> bool:
        if self.size is not None:
            return self.pos >= self.size
        peek = getattr(self._raw, "peek", None)
        if peek is not None:
            return not peek(1)
        return False


class Unscannable(Exception):
    """The content cannot be analysed completely (fail closed)."""


def parser_error(exc: BaseException) -> str:
    """pickletools' message without the bytes it quotes from the file (they could be anything)."""
    text = _QUOTED.sub("<...>", str(exc))
    return text.split("'", 1)[0].split('"', 1)[0][:120]  # an unbalanced quote: drop the rest


class NotPickle(Exception):
    """The bytes at this position do not start a pickle."""


class EndOfData(NotPickle):
    """No bytes at all at this position."""


class ZlibStream(io.RawIOBase):
    """Streaming zlib decompression as a file object (joblib's default compressor).

    Each call decompresses at most what the caller asked for (``max_length``): a chunk of a
    zlib bomb never expands in memory all at once.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._d = zlib.decompressobj()
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        size = len(b)
        while size:
            data = self._d.unconsumed_tail
            if not data and not self._eof:
                data = self._raw.read(1 << 16)
                self._eof = not data
            try:
                out = self._d.decompress(data, size)
            except zlib.error:
                raise Unscannable("corrupt zlib stream") from None
            if out:
                b[: len(out)] = out
                return len(out)
            if self._d.eof or (self._eof and not self._d.unconsumed_tail):
                return 0
        return 0



class Prefixed(io.RawIOBase):
    """Re-attach bytes already read (the sniffed head) in front of the rest of a stream."""

    def __init__(self, prefix: bytes, raw: IO[bytes]) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no intermediate copy
            return readinto(b) or 0
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            ch = self.read(1)
            if not ch:
                break
            out += ch
            if ch == b"\n":
                break
        return bytes(out)
