"""Catch filesystem, network and process access in a block of code (e.g. an operator's ``__init__``).

Airflow constructs every operator each time it parses a DAG file, so a constructor must only store its
arguments. ``forbid_io()`` fails the test on the first access in the block; ``record_io()`` only lists
the accesses (to count work, e.g. file reads per DAG checked).

How: a process-wide audit hook (``sys.addaudithook``; it cannot be removed, so it acts only while this
thread is inside a block) sees ``open`` (``open()``, ``Path.read_text``, ``io.open``, ``os.open``),
directory listings, file changes, sockets (create, connect, DNS), subprocesses and the like. ``os.stat``,
``os.lstat``, ``os.access`` and ``os.readlink`` raise no audit event, so they are replaced by recording
wrappers while any block is active (this covers ``os.path.exists``/``isfile``/``realpath`` and
``Path.exists``/``stat``/``is_dir``/``resolve``). Reads by the import system itself (loading a module
imported lazily inside the block) are allowed: import cost is checked by ``tests/test_packaging.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Audited events that touch files, the network or other processes.
_EVENTS = frozenset({
    "open", "os.listdir", "os.scandir", "os.walk", "os.fwalk", "glob.glob", "glob.glob/2",
    "pathlib.Path.glob", "pathlib.Path.rglob", "os.mkdir", "os.remove", "os.rmdir", "os.rename",
    "os.truncate", "os.chmod", "os.chown", "os.link", "os.symlink", "os.utime", "os.chdir", "os.chflags",
    "os.lchflags", "os.listxattr", "os.getxattr", "os.setxattr", "os.removexattr", "os.system", "os.exec",
    "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "shutil.copyfile",
    "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "shutil.make_archive", "shutil.unpack_archive", "shutil.chown", "subprocess.Popen", "tempfile.mkstemp",
    "tempfile.mkdtemp", "sqlite3.connect", "urllib.Request", "http.client.connect", "ftplib.connect",
    "smtplib.connect", "poplib.connect", "imaplib.open", "webbrowser.open", "ctypes.dlopen", "mmap.__new__",
    "fcntl.fcntl", "fcntl.ioctl", "fcntl.flock", "fcntl.lockf",
})
_EVENT_PREFIXES = ("socket.",)  # socket.__new__, connect, bind, getaddrinfo, gethostbyname, ...
#: Not audited by CPython: wrapped while a block is active.
_UNAUDITED_OS = ("stat", "lstat", "access", "readlink")
_IMPORT_SYSTEM = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<frozen zipimport>")


class IOViolation(BaseException):
    """Raised at the access itself; a ``BaseException`` so ``except Exception`` in the code under test
    cannot hide it (and :func:`forbid_io` re-checks its list at the end of the block anyway)."""


_local = threading.local()  # .events: list | None, .forbid: bool, .busy: bool
_lock = threading.Lock()
_hook_installed = False
_patch_depth = 0
_real_os: dict[str, Any] = {}


def _describe(event: str, args: tuple) -> str:
    if event.startswith("socket.") and len(args) > 1 and not isinstance(args[0], (str, bytes, int)):
        args = args[1:]  # the socket object itself says nothing useful
    text = ", ".join(repr(a) for a in args[:3])
    return f"{event}({text[:200]})"


def _note(event: str, args: tuple) -> None:
    events = getattr(_local, "events", None)
    if events is None or getattr(_local, "busy", False):
        return
    _local.busy = True  # repr() and frame inspection below may raise audit events of their own
    try:
        caller = sys._getframe(2)
        if caller.f_code.co_filename in _IMPORT_SYSTEM:
            return
        entry = _describe(event, args)
        events.append(entry)
    finally:
        _local.busy = False
    if getattr(_local, "forbid", False):
        raise IOViolation(entry)


def _audit(event: str, args: tuple) -> None:
    if getattr(_local, "events", None) is None:  # the common case, as cheap as possible
        return
    if event in _EVENTS or event.startswith(_EVENT_PREFIXES):
        _note(event, args)


def _wrapped_os(name: str, real: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "events", None) is not None:
            _note(f"os.{name}", args)
        return real(*args, **kwargs)

    wrapper.__name__ = name
    wrapper.__wrapped__ = real
    return wrapper


def _activate() -> None:
    global _hook_installed, _patch_depth  # process-wide: one hook, one set of os wrappers
    with _lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        if _patch_depth == 0:
            for name in _UNAUDITED_OS:
                _real_os[name] = getattr(os, name)
                setattr(os, name, _wrapped_os(name, _real_os[name]))
        _patch_depth += 1


def _deactivate() -> None:
    global _patch_depth
    with _lock:
        _patch_depth -= 1
        if _patch_depth == 0:
            for name, real in _real_os.items():
                setattr(os, name, real)
            _real_os.clear()


@contextlib.contextmanager
def record_io() -> Iterator[list[str]]:
    """List (without failing) every file/network/process access this thread makes in the block.

    Yields:
        The list, filled as the block runs: entries like ``"open('/p.yaml', 'r', 524288)"`` or
        ``"os.stat('/p.yaml')"``.
    """
    previous = (getattr(_local, "events", None), getattr(_local, "forbid", False))
    events: list[str] = []
    _activate()
    _local.events, _local.forbid = events, False
    try:
        yield events
    finally:
        _local.events, _local.forbid = previous
        _deactivate()


@contextlib.contextmanager
def forbid_io(what: str = "the block") -> Iterator[None]:
    """Fail the test if this thread touches the filesystem, the network or a process in the block.

    Args:
        what: Named in the failure message (e.g. ``"BiasGateOperator.__init__"``).
    """
    previous = (getattr(_local, "events", None), getattr(_local, "forbid", False))
    events: list[str] = []
    _activate()
    _local.events, _local.forbid = events, True
    try:
        yield
    except IOViolation:
        pass  # reported below, with everything seen
    finally:
        _local.events, _local.forbid = previous
        _deactivate()
    if events:
        raise AssertionError(f"I/O in {what}: " + "; ".join(events))
