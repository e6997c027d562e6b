"""The bounded reader for user-named files: every non-regular file is refused fast, never read."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest

from airflow_aisec.core.io import files
from airflow_aisec.core.io.files import check_regular_file, open_user_file, read_user_file
from airflow_aisec.exceptions import InputDataError, PolicyError

# Each case must end in well under a second; a hang (FIFO) or an endless read (/dev/zero) is a failure.
pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def short_dir():
    """A directory with a short path (AF_UNIX socket paths are limited to ~100 bytes)."""
    path = tempfile.mkdtemp(prefix="aisec-f-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_reads_a_regular_file_and_a_symlink_to_one(tmp_path):
    target = tmp_path / "p.yaml"
    target.write_bytes(b"version: 1\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert read_user_file(target, limit=100, what="policy file") == b"version: 1\n"
    assert read_user_file(str(link), limit=100, what="policy file") == b"version: 1\n"
    with open_user_file(link, "data file") as fh:
        assert fh.read() == b"version: 1\n"


def test_limit_is_inclusive_and_one_more_byte_is_refused(tmp_path):
    path = tmp_path / "k.pem"
    path.write_bytes(b"x" * 10)
    assert read_user_file(path, limit=10, what="public key") == b"x" * 10
    with pytest.raises(InputDataError, match=r"k\.pem: public key is larger than 9 bytes"):
        read_user_file(path, limit=9, what="public key")


def test_too_large_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.sig"
    with open(path, "wb") as fh:
        fh.truncate(1 << 40)  # sparse 1 TiB: reading it whole would never end
    with pytest.raises(InputDataError, match="signature is larger than 1024 bytes"):
        read_user_file(path, limit=1024, what="signature")


def test_size_claimed_by_stat_is_not_trusted():
    """/proc files are regular files of size 0 with content: the read itself stops at limit + 1."""
    with pytest.raises(InputDataError, match="manifest is larger than 16 bytes"):
        read_user_file("/proc/self/maps", limit=16, what="manifest")


def test_fifo_is_refused_before_open(short_dir):
    fifo = os.path.join(short_dir, "p.yaml")
    os.mkfifo(fifo)
    with pytest.raises(InputDataError, match=r"p\.yaml: policy file is a FIFO \(named pipe\), not a regular"):
        read_user_file(fifo, limit=100, what="policy file")
    with pytest.raises(PolicyError, match="FIFO"):
        read_user_file(fifo, limit=100, what="policy file", error=PolicyError)


def test_fifo_swapped_in_after_the_check_does_not_hang(short_dir, tmp_path, monkeypatch):
    """The stat check passed on a regular file, then a FIFO took its place: open must not block."""
    regular = tmp_path / "r"
    regular.write_bytes(b"ok")
    fifo = os.path.join(short_dir, "swapped")
    os.mkfifo(fifo)
    monkeypatch.setattr(files, "check_regular_file", lambda *a, **k: os.stat(regular))
    with pytest.raises(InputDataError, match="FIFO"):
        read_user_file(fifo, limit=100, what="signature")


def test_file_replaced_between_check_and_open_is_refused(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"1")
    two.write_bytes(b"2")
    monkeypatch.setattr(files, "check_regular_file", lambda *a, **k: os.stat(one))
    with pytest.raises(InputDataError, match="replaced while it was being opened"):
        read_user_file(two, limit=100, what="public key")


def test_dev_zero_is_refused():
    with pytest.raises(InputDataError, match="/dev/zero: private key is a character device"):
        read_user_file("/dev/zero", limit=1 << 20, what="private key")


def test_directory_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="policy file is a directory, not a regular file"):
        read_user_file(tmp_path, limit=100, what="policy file", error=PolicyError)
    with pytest.raises(InputDataError, match="directory"):
        check_regular_file(tmp_path, "data file")


def test_socket_is_refused(short_dir):
    path = os.path.join(short_dir, "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        with pytest.raises(InputDataError, match="signature is a socket"):
            read_user_file(path, limit=100, what="signature")


def test_symlink_loop_is_a_clear_error(tmp_path):
    a, b = tmp_path / "a.sig", tmp_path / "b.sig"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(InputDataError, match="signature is a symlink loop \\(too many levels of symbolic links\\)"):
        read_user_file(a, limit=100, what="signature")
    self_loop = tmp_path / "self.yaml"
    self_loop.symlink_to(self_loop)
    with pytest.raises(PolicyError, match="symlink loop"):
        read_user_file(self_loop, limit=100, what="policy file", error=PolicyError)


def test_missing_dangling_and_bad_paths(tmp_path):
    with pytest.raises(InputDataError, match="manifest not found"):
        read_user_file(tmp_path / "nope.json", limit=100, what="manifest")
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "deleted")
    with pytest.raises(InputDataError, match="data file not found"):
        check_regular_file(dangling, "data file")
    regular = tmp_path / "f"
    regular.write_bytes(b"")
    with pytest.raises(InputDataError, match="not found"):
        check_regular_file(regular / "child", "data file")
    with pytest.raises(InputDataError, match="path is invalid"):
        check_regular_file("a\x00b", "data file")


def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.pem"
    path.write_bytes(b"x")
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(InputDataError, match="not readable \\(permission denied\\)"):
            read_user_file(path, limit=100, what="private key")
        return
    # Root reads everything: check as an unprivileged user in a forked child instead of skipping.
    home = tempfile.mkdtemp(prefix="aisec-perm-")
    try:
        os.chmod(home, 0o755)
        target = os.path.join(home, "secret.pem")
        with open(target, "wb") as fh:
            fh.write(b"x")
        os.chmod(target, 0)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop to nobody, try the read, report the message, exit
            os.close(read_end)
            try:
                os.setgid(65534)
                os.setuid(65534)
                read_user_file(target, limit=100, what="private key")
                message = "read succeeded"
            except InputDataError as exc:
                message = str(exc)
            except BaseException as exc:  # noqa: BLE001 - report anything to the parent
                message = f"unexpected {type(exc).__name__}"
            os.write(write_end, message.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as fh:
            message = fh.read().decode()
        os.waitpid(pid, 0)
        assert "not readable (permission denied)" in message, message
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_messages_are_one_line_and_value_free(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"planted-secret-value" * 10)
    with pytest.raises(InputDataError) as info:
        read_user_file(path, limit=5, what="public key")
    text = str(info.value)
    assert "\n" not in text and "planted" not in text and str(path) in text


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "loop", "too_large"])
def test_policy_loader_uses_the_bounded_reader(kind, short_dir):
    from airflow_aisec.core.policy import MAX_POLICY_BYTES, load_policy

    path = os.path.join(short_dir, "policy.yaml")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path = "/dev/zero"
    elif kind == "loop":
        os.symlink(path, path)
    else:
        with open(path, "wb") as fh:
            fh.write(b"# " + b"x" * MAX_POLICY_BYTES + b"\nversion: 1\nname: big\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: policy file ")
    assert "\n" not in str(info.value)


def test_other_error_classes(short_dir):
    """The caller picks the error: e.g. a HEAD of an audit trail that is a FIFO is a broken chain (exit 1)."""
    from airflow_aisec.exceptions import EvidenceChainError

    head = os.path.join(short_dir, "HEAD")
    os.mkfifo(head)
    with pytest.raises(EvidenceChainError, match="HEAD: audit trail HEAD is a FIFO"):
        read_user_file(head, limit=4096, what="audit trail HEAD", error=EvidenceChainError)
