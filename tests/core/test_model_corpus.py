"""The model scan gate on a corpus of real artefacts made by the real libraries (tests/helpers/model_corpus.py).

Every benign artefact passes ``policies/model-supply-chain.yaml`` with no finding, every pickle-free one
also passes ``policies/strict.yaml``, and every malicious one fails both with the rule that names its
attack. The corpus is built once per session (torch and keras take seconds to import); nothing in it is
ever loaded by the gate (a marker file would appear) and the gate never imports torch, keras or onnx.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.model_scan import analyse_file, scan_model
from airflow_aisec.core.policy import load_policy
from airflow_aisec.core.policy.sections.model_scan import ModelScanPolicy
from tests.helpers import model_corpus as corpus
from tests.helpers.env import REPO

POLICIES = REPO / "policies"
PICKLE_FREE = sorted(n for n in corpus.BENIGN if corpus.BUILDERS[n][0].pickle_free)


@pytest.fixture(scope="session")
def model_corpus(tmp_path_factory) -> dict[str, Path]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    root = tmp_path_factory.mktemp("model-corpus")
    marker = root / f"LOADED-{uuid.uuid4().hex}"
    built = corpus.build_corpus(root / "artefacts", marker)
    yield built
    assert not marker.exists(), "something unpickled a corpus artefact"


@pytest.fixture(scope="module")
def policies():
    return {name: load_policy(POLICIES / f"{name}.yaml") for name in ("model-supply-chain", "strict")}


def _gate(loaded, model: Path):
    return run_check("model_scan", loaded, lambda: scan_model(loaded.section("model_scan"), model)).result


def _summary(result) -> list[str]:
    return [f"{f.rule}: {f.message}" for f in result.findings]


@pytest.mark.parametrize("name", corpus.BENIGN)
def test_benign_artefact_passes_the_supply_chain_policy(model_corpus, policies, name):
    result = _gate(policies["model-supply-chain"], model_corpus[name])
    assert result.verdict == "pass", _summary(result)
    assert result.findings == []
    assert result.metrics["loaded_any_model"] is False
    assert "unscannable" not in result.metrics["formats"]


@pytest.mark.parametrize("name", PICKLE_FREE)
def test_pickle_free_artefact_passes_the_strict_policy(model_corpus, policies, name):
    result = _gate(policies["strict"], model_corpus[name])
    assert result.verdict == "pass", _summary(result)
    assert result.metrics["pickle_files"] == 0


@pytest.mark.parametrize("name", corpus.MALICIOUS)
@pytest.mark.parametrize("policy", ["model-supply-chain", "strict"])
def test_malicious_artefact_fails(model_corpus, policies, name, policy):
    artefact = corpus.BUILDERS[name][0]
    result = _gate(policies[policy], model_corpus[name])
    assert result.verdict == "fail", _summary(result)
    rules = {f.rule for f in result.findings if f.enforcement == "enforce"}
    assert artefact.expect <= rules, _summary(result)


def test_the_corpus_covers_the_issue(model_corpus):
    kinds = {name: analyse_file(p, p.name).kind for name in model_corpus
             for p in sorted(model_corpus[name].iterdir()) if p.is_file()}
    assert {"torchscript+pickle", "zip+pickle", "keras", "onnx", "safetensors", "numpy", "zip", "pickle",
            "zlib+pickle", "gzip+pickle", "xz+pickle"} <= set(kinds.values())
    assert len(corpus.BENIGN) >= 25 and len(corpus.MALICIOUS) >= 30


# ------------------------------------------------------------------------------------------------
# issue 13: a scanner error never produces findings, and is never silent
# ------------------------------------------------------------------------------------------------
def test_sklearn_on_pandas_joblib_is_not_rejected_for_picklescans_broken_parse(model_corpus, policies):
    """picklescan breaks on joblib's nested pickle and reports a bogus ``None.dtype``: discarded."""
    model = model_corpus["sk_logreg_pandas_joblib"]
    result = _gate(policies["model-supply-chain"], model)
    assert result.verdict == "pass" and result.findings == []
    m = result.metrics
    assert m["scanner_errors"] == {"modelscan": 1, "picklescan": 1}
    assert m["scanned_by"] == {"aisec": 1, "modelscan": 0, "picklescan": 0}
    assert m["not_scanned"]["picklescan"] == [{"file": "model.joblib", "reasons": ["parse error"]}]
    assert m["not_scanned"]["modelscan"][0]["file"] == "model.joblib"
    assert "skipped:SCAN_NOT_SUPPORTED" in m["not_scanned"]["modelscan"][0]["reasons"]
    assert m["scanner_error_outcome"].startswith("fail_on_scanner_error: false -> no finding")
    # The built-in analysis reads the nested pickle: the real globals, not picklescan's.
    imports = analyse_file(model / "model.joblib", "model.joblib").imports
    assert ("numpy", "dtype") in imports and not any(m == "None" for m, _ in imports)


def test_fail_on_scanner_error_names_each_scanner_and_file(model_corpus):
    out = scan_model(ModelScanPolicy(fail_on_scanner_error=True), model_corpus["sk_pipeline_pandas_joblib"])
    (finding,) = out.findings
    assert finding.rule == "model_scan.scanner_error" and finding.location["file"] == "pipeline.joblib"
    assert finding.location["scanners"] == ["modelscan", "picklescan"]
    assert "modelscan" in finding.message and "picklescan" in finding.message
    assert "fail_on_scanner_error is true" in finding.message
    assert out.metrics["scanner_error_outcome"].startswith("fail_on_scanner_error: true")


def test_dangerous_import_from_a_scanner_that_parsed_cleanly_still_counts(model_corpus):
    out = scan_model(ModelScanPolicy(), model_corpus["pickle_os_system"])
    (finding,) = out.findings
    assert finding.location["scanners"] == ["aisec", "modelscan", "picklescan"]


@pytest.mark.parametrize("payload", sorted(corpus.PAYLOADS))
def test_payload_after_joblib_array_bytes_is_seen_by_the_builtin_analysis(model_corpus, payload):
    """picklescan stops at joblib's inline array bytes (and reports a parse error): the built-in analysis reads on."""
    out = scan_model(ModelScanPolicy(), model_corpus[f"joblib_nested_{payload}"])
    finding = next(f for f in out.findings if f.rule == "model_scan.dangerous_import")
    assert "aisec" in finding.location["scanners"]
    assert [e["file"] for e in out.metrics["not_scanned"].get("picklescan", [])] == ["model.joblib"]


def test_the_gate_imports_no_model_library(model_corpus):
    """Parsing, not loading: scanning the whole corpus imports neither torch, keras, onnx nor xgboost."""
    code = (
        "import sys, json\n"
        "from airflow_aisec.core.gates.model_scan import scan_model\n"
        "from airflow_aisec.core.policy.sections.model_scan import ModelScanPolicy\n"
        f"for d in {json.dumps([str(p) for p in model_corpus.values()])}:\n"
        "    scan_model(ModelScanPolicy(scanners=[]), d)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'keras', 'onnx', 'xgboost', 'lightgbm', 'sklearn',"
        " 'safetensors', 'joblib') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------------------------------------
# format checks on hand-varied real files
# ------------------------------------------------------------------------------------------------
def _safetensors(tmp_path: Path, header: dict, data: bytes, pad_to: int | None = None) -> Path:
    text = json.dumps(header).encode()
    if pad_to:
        text += b" " * (pad_to - len(text))
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_safetensors_header_length_that_starts_like_a_pickle(tmp_path):
    """A 640-byte header begins 0x80 0x02, a protocol 2 pickle's magic: still plain safetensors."""
    path = _safetensors(tmp_path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), 640)
    assert path.read_bytes()[:2] == b"\x80\x02"
    a = analyse_file(path, "m.safetensors")
    assert a.kind == "safetensors" and not a.problems and not a.pickle


@pytest.mark.parametrize("header,data,reason", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(12), "cover the data section"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "dtype and shape"),
    ({"w": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unknown dtype"),
    ({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
      "b": {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}}, bytes(12), "overlap or leave gaps"),
    ({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b"", "invalid shape"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
], ids=["trailing-bytes", "size-mismatch", "dtype", "gap", "negative-shape", "metadata"])
def test_safetensors_header_lies_are_unscannable(tmp_path, header, data, reason):
    a = analyse_file(_safetensors(tmp_path, header, data), "m.safetensors")
    assert a.kind == "unscannable" and reason in a.problems[0]


def test_onnx_garbage_and_truncation_are_unscannable(model_corpus, tmp_path):
    real = (model_corpus["onnx_inline"] / "model.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(real[: len(real) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"\x0f\xff\xff\xff" * 8)
    for name in ("cut.onnx", "junk.onnx"):
        a = analyse_file(tmp_path / name, name)
        assert a.kind == "unscannable" and "ONNX" in a.problems[0], name


def test_onnx_external_data_inside_a_subdirectory_is_fine(model_corpus, tmp_path):
    from airflow_aisec.core.gates.model_scan._format_checks import escaping_location

    assert escaping_location("model.onnx", "weights/w.bin") is None
    assert escaping_location("sub/model.onnx", "../w.bin") is None  # still inside the model directory
    assert escaping_location("model.onnx", "a/../../w.bin") == "path leaves the model directory"
    assert escaping_location("model.onnx", "C:\\w.bin") is not None
    assert escaping_location("model.onnx", "") == "empty location"


def test_keras_config_with_a_foreign_module(model_corpus, tmp_path):
    """A .keras whose config names a non-Keras module (imported on load: CVE-2025-1550 style)."""
    import zipfile

    src = model_corpus["keras_dense"] / "model.keras"
    dst = tmp_path / "model.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"]["kernel_initializer"] = {
                    "module": "os", "class_name": "system", "config": {}, "registered_name": None}
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    out = scan_model(ModelScanPolicy(), tmp_path)
    (finding,) = out.findings
    assert finding.rule == "model_scan.unsafe_layer" and finding.severity == "high"
    assert "os" in finding.message
    assert out.metrics["formats"] == {"keras": 1}


def test_library_versions_are_recorded():
    versions = corpus.library_versions()
    assert versions["torch"].endswith("+cpu")
    assert set(versions) >= {"scikit-learn", "xgboost", "lightgbm", "onnx", "keras", "safetensors"}
