"""``forbid_pickle: true`` catches every pickle protocol (0-5) by content, whatever the extension,
including protocol 0/1 pickles that import nothing and pickles inside zip members or compressed;
benign files written by real libraries stay clean under ``policies/strict.yaml``.
"""

from __future__ import annotations

import gzip
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from airflow_aisec.core.gates.model_scan import scan_model
from airflow_aisec.core.policy import load_policy

STRICT = load_policy(Path(__file__).resolve().parents[2] / "policies" / "strict.yaml").policy.model_scan
EXTENSIONS = [".json", ".txt", ".onnx", ".safetensors", ".md", ".yaml", ".bin", ""]
OBJECTS = {
    "list": [1, 2, 3],
    "dict": {"weights": [0.5, -1.25], "name": "layer"},
    "str": "hello world",
    "nested": {"a": [(1, 2), {"b": None, "c": True}], "d": b"raw bytes"},
    "big": list(range(30_000)),  # larger than the 64 KiB head in protocol 0
}


def pickle_rules(outcome, file: str) -> set[str]:
    return {f.rule for f in outcome.findings if f.location.get("file") == file}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_under_every_extension_is_a_pickle(tmp_path, protocol):
    names = []
    for kind, obj in OBJECTS.items():
        for ext in EXTENSIONS:
            name = f"{kind}-p{protocol}{ext}"
            (tmp_path / name).write_bytes(pickle.dumps(obj, protocol=protocol))
            names.append(name)
    out = scan_model(STRICT, tmp_path)
    assert out.metrics["pickle_files"] == len(names)
    for name in names:
        assert "model_scan.pickle_format" in pickle_rules(out, name), (name, [f.message for f in out.findings])


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_inside_zip_members_and_compressed_streams(tmp_path, protocol):
    data = pickle.dumps([1, 2, 3], protocol=protocol)
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as z:
        z.writestr("inner/weights.json", data)
        z.writestr("README.md", "a model\n")
    (tmp_path / "weights.json.gz").write_bytes(gzip.compress(data))
    out = scan_model(STRICT, tmp_path)
    for name in ("archive.zip", "weights.json.gz"):
        assert "model_scan.pickle_format" in pickle_rules(out, name), (name, [f.message for f in out.findings])


def test_benign_files_written_by_real_libraries_stay_clean(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((60, 3))
    model = LogisticRegression(max_iter=1000).fit(x, np.arange(60) % 2)
    # The example pipeline's model format: the coefficients as JSON.
    (tmp_path / "model.json").write_text(json.dumps({
        "type": "sklearn.linear_model.LogisticRegression", "features": ["a", "b", "c"],
        "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist(), "classes": model.classes_.tolist(),
    }, indent=2))
    (tmp_path / "compact.json").write_text(json.dumps({"w": x.tolist()}, separators=(",", ":")))
    (tmp_path / "list.json").write_text(json.dumps(list(range(50_000))))
    np.save(tmp_path / "weights.npy", x)
    np.save(tmp_path / "ints.npy", np.arange(100_000, dtype=np.int64))
    (tmp_path / "README.md").write_text("# Churn model\n\n(a) trained weekly\n(b) Version 1.0\n")
    (tmp_path / "vocab.txt").write_text("\n".join(["dog", "cat", "(lp0", "I1", "a.", "V1.0", "p0"] * 2000))
    (tmp_path / "notes.txt").write_text("Version 1\n.\n")
    (tmp_path / "config.yaml").write_text("layers: 2\nactivation: relu\n")
    header = b'{"w":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}'
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 256)
    try:
        import safetensors.numpy

        safetensors.numpy.save_file({"w": x.astype(np.float32)}, str(tmp_path / "real.safetensors"))
    except ImportError:
        pass
    # .npy is not in the strict allowlist: judge it by the pickle rules only.
    out = scan_model(STRICT, tmp_path)
    pickle_findings = [f for f in out.findings if f.rule != "model_scan.extension_not_allowed"]
    assert pickle_findings == [], [(f.rule, f.location) for f in pickle_findings]
    assert out.metrics["pickle_files"] == 0


def test_import_free_protocol_0_pickle_named_weights_json_fails_through_the_cli(aisec_cli, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_bytes(pickle.dumps([1, 2, 3], protocol=0))
    strict = Path(__file__).resolve().parents[2] / "policies" / "strict.yaml"
    out = aisec_cli("model", "scan", str(model), "--policy", str(strict))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "model_scan.pickle_format" in out.stdout
    (model / "weights.json").write_text(json.dumps([1, 2, 3]))
    assert aisec_cli("model", "scan", str(model), "--policy", str(strict)).returncode == 0
