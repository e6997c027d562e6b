"""Self-test of ``tests.helpers.no_io``: what the "no I/O in ``__init__``" checks rely on."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers.net import free_port
from tests.helpers.no_io import forbid_io, record_io


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")
    return path


@pytest.mark.parametrize(
    ("name", "access"),
    [
        ("Path.read_text", lambda p: p.read_text()),
        ("open", lambda p: open(p).close()),
        ("os.stat", lambda p: os.stat(p)),
        ("os.path.exists", lambda p: os.path.exists(p)),
        ("os.path.isfile", lambda p: os.path.isfile(p)),
        ("Path.exists", lambda p: p.exists()),
        ("Path.resolve", lambda p: p.resolve()),
        ("os.listdir", lambda p: os.listdir(p.parent)),
        ("Path.iterdir", lambda p: list(p.parent.iterdir())),
        ("os.access", lambda p: os.access(p, os.R_OK)),
        ("socket", lambda p: socket.socket().close()),
        ("DNS", lambda p: socket.getaddrinfo("localhost", 80)),
        ("subprocess", lambda p: subprocess.run(["true"], check=False)),
    ],
)
def test_forbid_io_catches(a_file, name, access):
    with pytest.raises(AssertionError, match="I/O in probe"), forbid_io("probe"):
        access(a_file)


def test_forbid_io_catches_a_connect_on_an_existing_socket():
    port = free_port()
    with socket.socket() as sock:
        sock.settimeout(2)
        with pytest.raises(AssertionError, match=rf"socket\.connect\(\('127\.0\.0\.1', {port}\)"), forbid_io("probe"):
            sock.connect(("127.0.0.1", port))


def test_forbid_io_cannot_be_swallowed_by_except_exception(a_file):
    def careless():
        try:
            return a_file.read_text()
        except Exception:  # noqa: BLE001 - what the helper must see through
            return None

    with pytest.raises(AssertionError, match=r"open\("), forbid_io("probe"):
        careless()


def test_forbid_io_allows_pure_code_and_lazy_imports(a_file):
    sys.modules.pop("colorsys", None)
    with forbid_io("probe"):
        module = importlib.import_module("colorsys")  # the import system's own reads are allowed
        assert module.rgb_to_hsv(1.0, 0.0, 0.0)[0] == 0.0
        assert str(a_file.with_suffix(".yml")).endswith(".yml")  # path arithmetic is not I/O


def test_block_is_per_thread_and_leaves_no_trace(a_file):
    real_stat = os.stat
    seen: list[bool] = []
    with forbid_io("probe"):
        other = threading.Thread(target=lambda: seen.append(os.path.exists(a_file)))
        other.start()
        other.join()
    assert seen == [True]  # another thread is not affected
    assert os.stat is real_stat and a_file.read_text() == "version: 1\n"  # restored after the block


def test_record_io_counts_without_failing(a_file):
    with record_io() as events:
        a_file.read_text()
        os.stat(a_file)
    assert [e.split("(", 1)[0] for e in events] == ["open", "os.stat"]
    assert str(a_file) in events[0]
