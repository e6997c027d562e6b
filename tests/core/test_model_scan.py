"""Unsafe model file scan: picklescan + modelscan + the built-in analysis, on real files built per test.

Every payload below would write a marker file if anything ever unpickled it; the tests check the
marker never appears (nothing is loaded to be scanned).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from airflow_aisec.core.gates.model_scan import analyse_file, is_dangerous_import, scan_model
from airflow_aisec.core.policy.sections.model_scan import ModelScanPolicy
from airflow_aisec.exceptions import InputDataError, PolicyError

MARKER_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


class Payload:
    """Unpickling this opens (creates) a marker file: proof that something loaded the model."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Shell:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / f"LOADED-{uuid.uuid4().hex}"
    yield path
    assert not path.exists(), "a scanner unpickled a model file"


def safetensors_bytes(n: int = 64) -> bytes:
    header = b'{"w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}' % (n, 4 * n)
    return struct.pack("<Q", len(header)) + header + b"\x00" * (4 * n)


def rules(outcome, file: str | None = None) -> set[str]:
    return {f.rule for f in outcome.findings if file is None or f.location.get("file") == file}


def finding(outcome, rule: str, file: str):
    return next(f for f in outcome.findings if f.rule == rule and f.location.get("file") == file)


DEFAULT = ModelScanPolicy()


# ----------------------------------------------------------------------------------------------
# clean models
# ----------------------------------------------------------------------------------------------
def test_clean_safetensors_model_passes_even_the_strict_policy(tmp_path):
    from airflow_aisec.core.policy import load_policy

    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes())
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "README.md").write_text("# model card\n")
    strict = load_policy(Path(__file__).resolve().parents[2] / "policies" / "strict.yaml").policy.model_scan
    out = scan_model(strict, tmp_path)
    assert out.findings == []
    assert out.metrics["formats"]["safetensors"] == 1 and out.metrics["pickle_files"] == 0
    assert out.metrics["loaded_any_model"] is False


def test_clean_sklearn_joblib_passes_unless_pickle_is_forbidden(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.random((40, 3)), np.arange(40) % 2)
    joblib.dump(model, tmp_path / "model.joblib")
    out = scan_model(DEFAULT, tmp_path)
    assert out.findings == [], [f.message for f in out.findings]
    assert out.metrics["pickle_files"] == 1

    strict = ModelScanPolicy(forbid_pickle=True)
    assert rules(scan_model(strict, tmp_path)) == {"model_scan.pickle_format"}

    allow = ModelScanPolicy(allowed_globals=["sklearn.*", "numpy.*", "joblib.numpy_pickle.NumpyArrayWrapper"])
    assert scan_model(allow, tmp_path).findings == []
    from airflow_aisec.core.policy import load_policy

    example = load_policy(Path(__file__).resolve().parents[2] / "policies" / "model-supply-chain.yaml")
    assert scan_model(example.policy.model_scan, tmp_path).findings == []
    out = scan_model(ModelScanPolicy(allowed_globals=["numpy.*"]), tmp_path)
    f = finding(out, "model_scan.unlisted_import", "model.joblib")
    assert "sklearn.linear_model._logistic.LogisticRegression" in f.location["imports"]


# ----------------------------------------------------------------------------------------------
# payloads each scanner catches, and the ones only the built-in analysis catches
# ----------------------------------------------------------------------------------------------
def test_plain_pickle_payload_is_flagged_by_all_three(tmp_path, marker):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    (tmp_path / "shell.pkl").write_bytes(pickle.dumps(Shell()))
    out = scan_model(DEFAULT, tmp_path)
    f = finding(out, "model_scan.dangerous_import", "shell.pkl")
    assert f.severity == "critical" and f.location["imports"] == ["posix.system"]
    assert f.location["scanners"] == ["aisec", "modelscan", "picklescan"]
    f = finding(out, "model_scan.dangerous_import", "model.pkl")
    assert "io.open" in f.location["imports"] and "aisec" in f.location["scanners"]


def test_joblib_payload_after_an_array_is_caught_only_by_the_builtin_analysis(tmp_path, marker):
    """joblib writes raw array bytes inside the pickle stream; both scanners stop parsing there."""
    import joblib

    joblib.dump({"coef": np.arange(1000.0), "hook": Payload(marker)}, tmp_path / "model.joblib")
    out = scan_model(DEFAULT, tmp_path)
    f = finding(out, "model_scan.dangerous_import", "model.joblib")
    assert f.location["imports"] == ["io.open"] and f.location["scanners"] == ["aisec"]


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)],
                         ids=["zlib", "gzip", "bz2", "xz", "lzma"])
def test_compressed_joblib_payload(tmp_path, marker, compress):
    import joblib

    joblib.dump({"w": np.ones(50), "hook": Payload(marker)}, tmp_path / "model.joblib", compress=compress)
    out = scan_model(DEFAULT, tmp_path)
    f = finding(out, "model_scan.dangerous_import", "model.joblib")
    assert "io.open" in f.location["imports"] and "aisec" in f.location["scanners"]


def test_numpy_object_arrays_npy_and_npz(tmp_path, marker):
    np.save(tmp_path / "plain.npy", np.arange(10))
    np.save(tmp_path / "evil.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "bundle.npz", a=np.arange(3), b=np.array([Shell()], dtype=object))
    out = scan_model(DEFAULT, tmp_path)
    assert rules(out, "plain.npy") == set()
    assert "io.open" in finding(out, "model_scan.dangerous_import", "evil.npy").location["imports"]
    assert finding(out, "model_scan.dangerous_import", "bundle.npz").location["imports"] == ["posix.system"]
    # modelscan's numpy scanner breaks under numpy 2.x: recorded, and covered by the other two.
    assert out.metrics["scanner_errors"]["modelscan"] >= 1
    assert "aisec" in finding(out, "model_scan.dangerous_import", "evil.npy").location["scanners"]


def _torch_zip(path: Path, data_pkl: bytes) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", os.urandom(256))


def test_pytorch_zip_checkpoints(tmp_path, marker):
    _torch_zip(tmp_path / "evil.pt", pickle.dumps(Payload(marker), protocol=2))
    _torch_zip(tmp_path / "ok.pth", pickle.dumps({"layer.weight": [1.0, 2.0]}, protocol=2))
    out = scan_model(DEFAULT, tmp_path)
    f = finding(out, "model_scan.dangerous_import", "evil.pt")
    assert "io.open" in f.location["imports"]
    assert rules(out, "ok.pth") == set()
    assert rules(scan_model(ModelScanPolicy(forbid_pickle=True), tmp_path), "ok.pth") == {
        "model_scan.pickle_format"}


def _legacy_torch(payload) -> bytes:
    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}, payload, ["0"]):
        pickle.dump(obj, buf, protocol=2)
    return buf.getvalue() + os.urandom(512)  # raw storage bytes follow the pickles


def test_legacy_pytorch_format(tmp_path, marker):
    (tmp_path / "old.bin").write_bytes(_legacy_torch({"w": [1, 2]}))
    (tmp_path / "old-evil.pt").write_bytes(_legacy_torch(Payload(marker)))
    out = scan_model(DEFAULT, tmp_path)
    assert rules(out, "old.bin") == set()
    assert "io.open" in finding(out, "model_scan.dangerous_import", "old-evil.pt").location["imports"]


def test_pickles_disguised_as_other_formats(tmp_path, marker):
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    (tmp_path / "config.json").write_bytes(pickle.dumps(Shell(), protocol=0))  # text pickle, no magic
    out = scan_model(DEFAULT, tmp_path)
    for name in ("model.safetensors", "config.json"):
        assert {"model_scan.format_mismatch", "model_scan.dangerous_import"} <= rules(out, name), name
    assert finding(out, "model_scan.format_mismatch", "config.json").severity == "critical"


def test_text_pickle_that_calls_before_it_breaks_is_still_a_disguised_pickle(tmp_path):
    # pickle.load runs os.system at REDUCE, before it reaches the end: a missing STOP, a garbage
    # tail, or a tail that crashes the analyser (object arrays nested past the recursion limit)
    # must not make the file "not a pickle".
    call = b"cos\nsystem\n(S'echo pwned'\ntR"
    wrapper = (b"0cjoblib.numpy_pickle\nNumpyArrayWrapper\np1\n0"
               b"(dp2\nS'dtype'\ncnumpy\ndtype\n(S'O8'\ntRsS'shape'\n(I1\nts0")
    files = {
        "no_stop.json": call,
        "garbage_tail.json": call + b"\xff",
        "deep_nesting.json": call + wrapper + b"g1\n(tRg2\nb" * 2000 + b"N.",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "vocab.txt").write_bytes(b"cat\ndog\nbird\nfish\n")  # text that parses as a GLOBAL
    out = scan_model(DEFAULT, tmp_path)
    for name in files:
        assert {"model_scan.format_mismatch", "model_scan.dangerous_import"} <= rules(out, name), name
        assert "os.system" in finding(out, "model_scan.dangerous_import", name).location["imports"]
    assert rules(out, "vocab.txt") == set()


def test_compressed_pickles_under_any_name_are_analysed(tmp_path, marker):
    # joblib.load recognises zlib / lzma / gzip by content, whatever the file is called, and
    # unpickles protocol-0 text pickles too.
    (tmp_path / "clf").write_bytes(zlib.compress(pickle.dumps(Shell())))
    (tmp_path / "notes.txt").write_bytes(lzma.compress(pickle.dumps(Payload(marker)), format=lzma.FORMAT_ALONE))
    (tmp_path / "model.bin").write_bytes(gzip.compress(pickle.dumps(Shell(), protocol=0)))
    (tmp_path / "formula.txt").write_bytes(b"x^2 + y^2 = r^2\n")  # starts like a zlib header
    out = scan_model(DEFAULT, tmp_path)
    for name in ("clf", "notes.txt", "model.bin"):
        assert "model_scan.dangerous_import" in rules(out, name), (name, [f.message for f in out.findings])
    assert "model_scan.format_mismatch" in rules(out, "notes.txt")
    assert rules(out, "formula.txt") == set()


def test_stack_global_resolved_through_the_memo():
    # PROTO 4; 'os' MEMOIZE; 'system' MEMOIZE; BINGET 0; BINGET 1; STACK_GLOBAL; 'id' TUPLE1 REDUCE STOP
    data = (b"\x80\x04" + b"\x8c\x02os\x94" + b"\x8c\x06system\x94" + b"h\x00h\x01\x93"
            + b"\x8c\x02id\x85R.")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"memo-{uuid.uuid4().hex}.pkl"
    path.write_bytes(data)
    try:
        result = analyse_file(path, "memo.pkl")
    finally:
        path.unlink()
    assert result.imports == {("os", "system")} and not result.problems


def test_denylist_semantics():
    assert is_dangerous_import("os", "system")
    assert is_dangerous_import("urllib.request", "urlopen")  # parent module listed with '*'
    assert is_dangerous_import("builtins", "eval") and is_dangerous_import("builtins", "getattr")
    assert is_dangerous_import("unknown", "unknown")  # unresolvable STACK_GLOBAL
    assert not is_dangerous_import("collections", "OrderedDict")
    assert not is_dangerous_import("numpy.core.multiarray", "_reconstruct")


# ----------------------------------------------------------------------------------------------
# fail closed on what cannot be analysed
# ----------------------------------------------------------------------------------------------
def test_unanalysable_files_are_findings(tmp_path, marker):
    whole = pickle.dumps({"hook": Payload(marker), "a": list(range(100))})
    (tmp_path / "truncated.pkl").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "lz4.joblib").write_bytes(b"\x04\x22\x4d\x18" + os.urandom(64))
    (tmp_path / "text.pkl").write_text("hello, not a pickle")
    (tmp_path / "trailing.pkl").write_bytes(pickle.dumps([1, 2]) + b"\xff\xfe garbage")
    with zipfile.ZipFile(tmp_path / "corrupt.pt", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps([1]))
    (tmp_path / "corrupt.pt").write_bytes((tmp_path / "corrupt.pt").read_bytes()[:40])
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("data.pkl", pickle.dumps(Shell()))
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
    out = scan_model(DEFAULT, tmp_path)
    for name in ("truncated.pkl", "lz4.joblib", "text.pkl", "trailing.pkl", "corrupt.pt", "nested.zip"):
        assert "model_scan.unscannable" in rules(out, name), (name, [f.message for f in out.findings])
    assert "io.open" in finding(out, "model_scan.dangerous_import", "truncated.pkl").location["imports"]


def test_decompression_bomb_is_capped(tmp_path):
    (tmp_path / "bomb.joblib").write_bytes(zlib.compress(b"\x80\x04" + b"N0" * 5_000_000, 9))
    out = scan_model(ModelScanPolicy(max_decompressed_bytes=1_000_000), tmp_path)
    f = finding(out, "model_scan.unscannable", "bomb.joblib")
    assert "exceeds 1000000 bytes" in f.message


def test_declared_sizes_and_compression_ratios_cannot_exhaust_memory(tmp_path):
    # A BINBYTES8 opcode declares its length: the scanner must not allocate it (or decompress it
    # in one go) beyond the policy's cap, whatever the declared size or the compression ratio.
    import tracemalloc

    size = 64 * 1024 * 1024
    head = b"\x80\x04\x8e" + struct.pack("<Q", size)
    zeros = bytes(size)
    (tmp_path / "z.joblib").write_bytes(zlib.compress(head + zeros, 9))
    (tmp_path / "g.joblib").write_bytes(gzip.compress(head + zeros, 9))
    del zeros
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    (tmp_path / "o.npy").write_bytes(npy.getvalue() + head + b"x" * 100)
    for name in ("z.joblib", "g.joblib", "o.npy"):
        tracemalloc.start()
        try:
            result = analyse_file(tmp_path / name, name, limit=4 * 1024 * 1024)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.kind == "unscannable", (name, result.kind)
        assert peak < 16 * 1024 * 1024, (name, peak)


def test_symlinks_and_special_files(tmp_path, marker):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.pkl").write_bytes(pickle.dumps(Payload(marker)))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(safetensors_bytes())
    (model / "alias.safetensors").symlink_to(model / "model.safetensors")
    (model / "escape.pkl").symlink_to(outside / "evil.pkl")
    os.mkfifo(model / "pipe")
    out = scan_model(DEFAULT, model)
    assert rules(out, "escape.pkl") == {"model_scan.symlink"}
    assert rules(out, "alias.safetensors") == set()
    assert finding(out, "model_scan.unscannable", "pipe").location["reason"] == "special_file"
    assert out.metrics["files"] == 1  # the escaping link was not followed


# ----------------------------------------------------------------------------------------------
# policy
# ----------------------------------------------------------------------------------------------
def test_extensions_allowlist_and_scanner_errors_policy(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes())
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "NOTICE").write_text("x")
    np.save(tmp_path / "plain.npy", np.arange(4))
    pol = ModelScanPolicy(allowed_extensions=["SAFETENSORS", "npy"])
    assert pol.allowed_extensions == [".npy", ".safetensors"]
    out = scan_model(pol, tmp_path)
    assert {f.location["file"] for f in out.findings if f.rule == "model_scan.extension_not_allowed"} == {
        "run.sh", "NOTICE"}
    out = scan_model(ModelScanPolicy(allowed_extensions=["", ".safetensors", ".sh", ".npy"],
                                     fail_on_scanner_error=True), tmp_path)
    assert rules(out) == {"model_scan.scanner_error"}  # modelscan's numpy scanner on plain.npy
    assert finding(out, "model_scan.scanner_error", "plain.npy").location["scanners"] == ["modelscan"]
    only_ours = scan_model(ModelScanPolicy(scanners=[]), tmp_path)
    assert only_ours.metrics["scanners"] == ["aisec"]


def test_bad_input_and_policy(tmp_path):
    from airflow_aisec.core.policy import parse_policy

    with pytest.raises(InputDataError, match="not found"):
        scan_model(DEFAULT, tmp_path / "missing")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(InputDataError, match="not a directory"):
        scan_model(DEFAULT, tmp_path / "file.bin")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match="no files"):
        scan_model(DEFAULT, empty)
    with pytest.raises(InputDataError, match="more than 1 files"):
        (empty / "a").write_text("1")
        (empty / "b").write_text("2")
        scan_model(ModelScanPolicy(max_files=1), empty)
    for bad in (b"model_scan: {scanners: [clamav]}", b"model_scan: {forbid_pickles: true}",
                b"model_scan: {max_files: 0}"):
        with pytest.raises(PolicyError, match="model_scan"):
            parse_policy(b"version: 1\nname: t\n" + bad)


def test_findings_are_value_free(tmp_path, marker):
    secret_text = "TOP-SECRET-CUSTOMER-4111111111111111"
    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"note": secret_text, "hook": Payload(marker)}))
    out = scan_model(DEFAULT, tmp_path)
    assert out.findings
    assert secret_text not in out.model_dump_json()
    assert str(marker) not in out.model_dump_json()  # payload arguments are data: never reported


def test_parser_errors_do_not_quote_file_content(tmp_path):
    # pickletools' errors quote the bytes they could not parse (a string, an int, a float literal).
    (tmp_path / "a.pkl").write_bytes(b"(S'hunter2-secret-value\nt.")
    (tmp_path / "b.pkl").write_bytes(b"\x80\x02(Ihunter3secret\nt.")
    (tmp_path / "c.pkl").write_bytes(b"(Fhunter4secret\n.")
    (tmp_path / "d.pkl").write_bytes(b"Shunter5secret\n.")
    out = scan_model(DEFAULT, tmp_path)
    assert {f.location["file"] for f in out.findings if f.rule == "model_scan.unscannable"} == {
        "a.pkl", "b.pkl", "c.pkl", "d.pkl"}
    text = out.model_dump_json()
    assert "hunter" not in text and "secret" not in text


@pytest.mark.integration
def test_scan_model_on_s3(s3_server, marker):
    client = s3_server.client()
    bucket = f"scan-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_bytes())
    client.put_object(Bucket=bucket, Key="m/sub/evil.pkl", Body=pickle.dumps(Payload(marker)))
    out = scan_model(DEFAULT, f"s3://{bucket}/m", s3_client=client)
    assert rules(out) == {"model_scan.dangerous_import"}
    assert finding(out, "model_scan.dangerous_import", "sub/evil.pkl")
    with pytest.raises(InputDataError, match="no objects"):
        scan_model(DEFAULT, f"s3://{bucket}/nothing/", s3_client=client)


def test_compression_helpers_roundtrip_sanity():
    """Guard against silently skipping a format: each compressor's magic is recognised."""
    from airflow_aisec.core.gates.model_scan._formats import compression as _compression

    raw = pickle.dumps([1])
    assert _compression(zlib.compress(raw)) == "zlib"
    assert _compression(gzip.compress(raw)) == "gzip"
    assert _compression(bz2.compress(raw)) == "bz2"
    assert _compression(lzma.compress(raw)) == "xz"
    assert _compression(lzma.compress(raw, format=lzma.FORMAT_ALONE)) == "lzma"


def test_joblib_structured_arrays_are_skipped_by_item_size_and_object_fields_are_followed(tmp_path, marker):
    """A fitted tree's node array is a structured dtype: its bytes are skipped by the pickled item size,
    and a structured array with an object field is written as a nested pickle, analysed as one."""
    import joblib

    nodes = np.zeros(500, dtype=[("left", "<i8"), ("right", "<i8"), ("threshold", "<f8"), ("n", "<i8")])
    (tmp_path / "clean").mkdir()
    joblib.dump({"nodes": nodes, "after": np.arange(3)}, tmp_path / "clean" / "tree.joblib")
    out = scan_model(ModelScanPolicy(allowed_globals=["numpy.*", "joblib.numpy_pickle.NumpyArrayWrapper"]),
                     tmp_path / "clean")
    assert out.findings == [] and out.metrics["formats"] == {"pickle": 1}

    mixed = np.zeros(2, dtype=[("x", "<f8"), ("obj", "O")])
    mixed["obj"][1] = Payload(marker)
    (tmp_path / "evil").mkdir()
    joblib.dump({"nodes": nodes, "mixed": mixed}, tmp_path / "evil" / "tree.joblib")
    out = scan_model(DEFAULT, tmp_path / "evil")
    assert "io.open" in finding(out, "model_scan.dangerous_import", "tree.joblib").location["imports"]


def test_partial_output_of_a_failed_scanner_is_discarded(tmp_path):
    """picklescan's half-parsed globals (``None.dtype``) never become findings; the file is listed instead."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from airflow_aisec.core.gates.model_scan._scanners import run_picklescan

    df = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    joblib.dump(LogisticRegression().fit(df, np.arange(40) % 2), tmp_path / "model.joblib")
    view = run_picklescan([("model.joblib", tmp_path / "model.joblib")])
    assert view.errors == {"model.joblib": ["parse error"]}
    assert view.imports == {} and view.dangerous == {} and view.scanned == 0
    out = scan_model(ModelScanPolicy(allowed_globals=["sklearn.*", "numpy.*", "joblib.numpy_pickle.*"]), tmp_path)
    assert out.findings == []
    assert out.metrics["not_scanned"]["picklescan"] == [{"file": "model.joblib", "reasons": ["parse error"]}]
