"""The one way to open a file a user names: policies, keys, signatures, manifests, GX suites, data.

A path given on the command line or in a DAG may be anything: a FIFO (reading it blocks forever), a
device (``/dev/zero`` never ends), a socket, a directory, a symlink loop. Every such path is refused
with a one-line error (exit 2) before any byte is read:

1. ``os.stat`` first (symlinks followed, the kernel's loop limit applies): only a regular file passes,
   so nothing else is ever opened.
2. ``open`` with ``O_NONBLOCK``: a FIFO swapped in after the check cannot block the open.
3. ``fstat`` the descriptor: it must still be a regular file, the same one that was checked.
4. read at most ``limit + 1`` bytes, so an oversized file is refused without being read whole.

Errors are :class:`~airflow_aisec.exceptions.InputDataError` by default, or the class the caller
passes (e.g. :class:`~airflow_aisec.exceptions.PolicyError`); messages name the file and what it
was expected to be, never its content. Stdlib only: cheap to import.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from airflow_aisec.exceptions import AisecError, InputDataError, PolicyError

#: Chunk size for bounded reads.
_CHUNK = 1 << 16


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "of an unknown kind"


def _error(error: type[AisecError], path: str, message: str) -> AisecError:
    """``error`` for ``path``: ``"<path>: <message>"`` in one line."""
    if issubclass(error, PolicyError):
        return error(message, source=path)
    return error(f"{path}: {message}")


def _os_error(error: type[AisecError], path: str, what: str, exc: OSError) -> AisecError:
    code = exc.errno
    if code == errno.ENOENT:
        return _error(error, path, f"{what} not found")
    if code in (errno.EACCES, errno.EPERM):
        return _error(error, path, f"{what} is not readable (permission denied)")
    if code == errno.ELOOP:
        return _error(error, path, f"{what} is a symlink loop (too many levels of symbolic links), "
                                   "not a regular file")
    if code == errno.ENOTDIR:
        return _error(error, path, f"{what} not found (a parent of the path is not a directory)")
    if code == errno.ENAMETOOLONG:
        return _error(error, path, f"{what} path is too long")
    return _error(error, path, f"cannot read {what}: {exc.strerror or type(exc).__name__}")


def check_regular_file(
    path: str | os.PathLike[str], what: str = "file", *, error: type[AisecError] = InputDataError
) -> os.stat_result:
    """Refuse anything but an existing, readable regular file, without opening it.

    Symlinks are followed (the kernel's limit on link levels applies: a loop is refused).

    Args:
        path: The file the user named.
        what: What it should be, for the message (``"policy file"``, ``"public key"``, ...).
        error: Exception class to raise, called with one message (default :class:`InputDataError`, exit 2;
            e.g. :class:`PolicyError`, or :class:`EvidenceChainError` for a tampered audit trail).

    Returns:
        The file's ``stat`` result.

    Raises:
        error: missing, not readable, a symlink loop, or not a regular file.
    """
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise _os_error(error, name, what, exc) from None
    except ValueError:  # embedded NUL byte
        raise _error(error, name, f"{what} path is invalid (NUL byte)") from None
    if not stat.S_ISREG(st.st_mode):
        raise _error(error, name, f"{what} is {_kind(st.st_mode)}, not a regular file")
    return st


def open_user_file(
    path: str | os.PathLike[str], what: str = "file", *, error: type[AisecError] = InputDataError
) -> BinaryIO:
    """Open a user-named regular file for binary reading (see the module docstring for the checks).

    The caller closes the returned file (use it as a context manager).

    Raises:
        error: as :func:`check_regular_file`, or the file changed between the check and the open.
    """
    name = os.fspath(path)
    before = check_regular_file(name, what, error=error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        raise _os_error(error, name, what, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _error(error, name, f"{what} is {_kind(st.st_mode)}, not a regular file")
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise _error(error, name, f"{what} was replaced while it was being opened")
        # Back to blocking reads: O_NONBLOCK only had to protect the open itself.
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_user_file(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str = "file",
    error: type[AisecError] = InputDataError,
) -> bytes:
    """Read a whole user-named regular file of at most ``limit`` bytes.

    At most ``limit + 1`` bytes are read whatever the file claims to be, so a file that grows while it
    is read cannot exhaust memory either.

    Args:
        path: The file the user named (local path; S3 objects are read elsewhere).
        limit: Largest size accepted, in bytes.
        what: What the file should be, for the message.
        error: Exception class to raise, called with one message (default :class:`InputDataError`, exit 2;
            e.g. :class:`PolicyError`, or :class:`EvidenceChainError` for a tampered audit trail).

    Raises:
        error: not a readable regular file (see :func:`check_regular_file`), or larger than ``limit``.
    """
    name = os.fspath(path)
    too_large = f"{what} is larger than {limit} bytes"
    with open_user_file(name, what, error=error) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise _error(error, name, too_large)
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= limit:
                chunk = fh.read(min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise _os_error(error, name, what, exc) from None
    if size > limit:
        raise _error(error, name, too_large)
    return b"".join(chunks)


__all__ = ["check_regular_file", "open_user_file", "read_user_file"]
