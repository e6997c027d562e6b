"""Fuzzed audit trails through ``aisec audit verify``: every edit of the chain (bytes, records removed,
swapped, replaced by links, FIFOs or JSON nested too deeply to parse, HEAD changed) is found, and
nothing hangs or crashes there or in ``audit show`` and ``audit export``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz._support import check_contract, fuzz_settings, run_cli

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]

RECORDS = 5


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    from airflow_aisec.core.evidence import open_evidence_store

    root = tmp_path_factory.mktemp("fuzz-trail") / "trail"
    store = open_evidence_store(root)
    for i in range(RECORDS):
        store.append({"gate": "pii", "verdict": "pass", "n": i, "text": "caf\u00e9 \u2603"})
    assert run_cli("audit", "verify", str(root)).code == 0
    return root


def record(i: int) -> str:
    return f"{i:012d}.json"


EDITS = st.sampled_from([
    "flip", "truncate", "append_bytes", "delete", "swap", "fifo", "symlink_dev_zero", "symlink_loop", "directory",
    "delete_head", "corrupt_head", "extra_record", "junk_file", "hidden_file", "rewrite_same", "deep_nesting",
])


def chain_changed(original: Path, root: Path) -> bool:
    """Whether a record or HEAD is gone, no longer a regular file, or holds other bytes, or a record
    was added: what verify must report. Files that are not records (notes, hidden files) do not count."""
    for path in original.iterdir():
        if path.name.startswith("."):
            continue
        now = root / path.name
        if now.is_symlink() or not now.is_file() or now.read_bytes() != path.read_bytes():
            return True
    return any(p.name.endswith(".json") and p.name[:12].isdigit() and not (original / p.name).exists()
               for p in root.iterdir())


@fuzz_settings(max_examples=80)
@given(edits=st.lists(EDITS, min_size=1, max_size=3), data=st.data())
def test_fuzzed_trail(trail, edits, data):
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        root = Path(tmp) / "trail"
        shutil.copytree(trail, root, symlinks=True)
        for path in root.iterdir():
            path.chmod(0o644)  # records are created read-only
        for edit in edits:
            i = data.draw(st.integers(1, RECORDS), label="record")
            target = root / record(i)
            if not target.is_file() or target.is_symlink():
                continue  # an earlier edit already replaced it
            raw = target.read_bytes()
            if not raw and edit in ("flip", "truncate"):
                continue  # cut to nothing by an earlier edit
            if edit == "flip":
                at = data.draw(st.integers(0, len(raw) - 1), label="at")
                target.write_bytes(raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:])
            elif edit == "truncate":
                target.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
            elif edit == "append_bytes":
                target.write_bytes(raw + data.draw(st.binary(min_size=1, max_size=16)))
            elif edit == "delete":
                target.unlink()
            elif edit == "swap":
                j = data.draw(st.sampled_from([k for k in range(1, RECORDS + 1) if k != i]), label="other")
                other = root / record(j)
                if not other.is_file() or other.is_symlink():
                    continue
                other_raw = other.read_bytes()
                target.write_bytes(other_raw)
                other.write_bytes(raw)
            elif edit == "fifo":
                target.unlink()
                os.mkfifo(target)
            elif edit == "symlink_dev_zero":
                target.unlink()
                target.symlink_to("/dev/zero")
            elif edit == "symlink_loop":
                target.unlink()
                target.symlink_to(target)
            elif edit == "directory":
                target.unlink()
                target.mkdir()
            elif edit == "delete_head":
                (root / "HEAD").unlink(missing_ok=True)
            elif edit == "corrupt_head":
                (root / "HEAD").write_bytes(data.draw(st.binary(max_size=40) | st.sampled_from(
                    [b"{}", b'{"seq": 99, "sha256": "x"}', b'{"seq": -1, "sha256": ""}', b"null",
                     b'{"seq":0,"sha256":""}'])))
            elif edit == "extra_record":
                (root / record(RECORDS + data.draw(st.integers(1, 3)))).write_bytes(raw)
            elif edit == "junk_file":
                (root / data.draw(st.sampled_from(["notes.txt", "x.json", "000.json", "HEAD.bak"]))).write_bytes(b"x")
            elif edit == "deep_nesting":  # under the size limit, past the JSON parser's recursion limit
                target.write_bytes(data.draw(st.sampled_from([b"[" * 50_000, b'{"a":' * 50_000])))
            elif edit == "hidden_file":
                (root / ".tmp-leftover").write_bytes(b"partial")
            else:
                target.write_bytes(raw)
            event(edit)
        planted = chain_changed(trail, root)
        run = run_cli("audit", "verify", str(root))
        event(f"verify exit {run.code} ({'changed' if planted else 'unchanged'})")
        check_contract(run, violation_planted=planted)
        out = str(Path(tmp) / "export")  # export writes bytes: a file, not the captured stdout
        for argv in (("show",), ("export", "--format", "junit", "--output", out),
                     ("export", "--format", "sarif", "--output", out)):
            other = run_cli("audit", argv[0], str(root), *argv[1:])
            check_contract(other, violation_planted=planted and argv[0] == "export")


@fuzz_settings(max_examples=20)
@given(location=st.sampled_from(["/dev/zero", "/dev/null", "missing", "file", "fifo", "loop"]))
def test_odd_trail_locations(location):
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        path = Path(tmp) / "trail"
        if location == "file":
            path.write_bytes(b"{}")
        elif location == "fifo":
            os.mkfifo(path)
        elif location == "loop":
            path.symlink_to(path)
        elif location.startswith("/dev"):
            path = Path(location)
        for verb in ("verify", "show"):
            run = run_cli("audit", verb, str(path))
            event(f"{location} {verb} exit {run.code}")
            check_contract(run)
