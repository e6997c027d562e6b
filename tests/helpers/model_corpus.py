"""A corpus of real model artefacts, made by the real libraries, benign and malicious.

Each artefact is a model directory (what ``aisec model scan`` takes) built by one function below.
Names are static (tests parametrize over them at collection time); :func:`build_corpus` builds them
all once into a directory (torch and keras take seconds to import). Malicious pickles carry payloads
that would write a marker file or run a shell command if anything ever unpickled them: tests check
the marker never appears.

Libraries: scikit-learn, joblib, pandas, numpy, xgboost, lightgbm, torch (CPU wheel), safetensors,
onnx, keras 3 (``KERAS_BACKEND=torch``). Nothing here touches the network.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where malicious payloads would write if they ran (set by :func:`build_corpus`).
_MARKER: list[str] = ["/nonexistent/aisec-corpus-marker"]


@dataclass(frozen=True)
class Artefact:
    name: str
    benign: bool
    #: No pickle anywhere in it (then it must pass the pickle-free strict policy, extensions permitting).
    pickle_free: bool = False
    #: Rules a malicious artefact must raise (at least one of them).
    expect: frozenset[str] = frozenset()


# ------------------------------------------------------------------------------------------------
# payloads: each would run something if unpickled
# ------------------------------------------------------------------------------------------------
class MarkerOpen:
    def __reduce__(self):
        return (open, (_MARKER[0], "w"))


class OsSystem:
    def __reduce__(self):
        return (os.system, (f"touch {_MARKER[0]}",))


class SubprocessPopen:
    def __reduce__(self):
        return (subprocess.Popen, (["touch", _MARKER[0]],))


class BuiltinsExec:
    def __reduce__(self):
        return (builtins.exec, (f"open({_MARKER[0]!r}, 'w')",))


class BuiltinsEval:
    def __reduce__(self):
        return (builtins.eval, (f"open({_MARKER[0]!r}, 'w')",))


class _ImportOs:
    def __reduce__(self):
        return (builtins.__import__, ("os",))


class _GetSystem:
    """``getattr(__import__('os'), 'system')``: a call chain with no dangerous name at the top."""

    def __call__(self, *args):  # pragma: no cover - only pickled, never called
        raise AssertionError

    def __reduce__(self):
        return (builtins.getattr, (_ImportOs(), "system"))


class GetattrChain:
    def __reduce__(self):
        return (_GetSystem(), (f"touch {_MARKER[0]}",))


PAYLOADS: dict[str, type] = {
    "os_system": OsSystem, "subprocess_popen": SubprocessPopen, "builtins_exec": BuiltinsExec,
    "builtins_eval": BuiltinsEval, "getattr_chain": GetattrChain, "open_marker": MarkerOpen,
}

DANGEROUS = frozenset({"model_scan.dangerous_import"})
DISGUISED = frozenset({"model_scan.dangerous_import", "model_scan.format_mismatch"})


# ------------------------------------------------------------------------------------------------
# training data
# ------------------------------------------------------------------------------------------------
def _frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n).astype(float),
        "income": rng.normal(50_000, 12_000, n),
        "city": rng.choice(["lisbon", "porto", "braga"], n),
        "plan": pd.Categorical(rng.choice(["basic", "pro"], n)),
    })
    y = (df["income"] > 50_000).astype(int).to_numpy()
    return df, y


def _arrays():
    rng = np.random.default_rng(1)
    x = rng.random((120, 4))
    return x, (x[:, 0] + x[:, 1] > 1).astype(int)


def _pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([
        ("num", StandardScaler(), ["age", "income"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
    ])
    df, y = _frame()
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(df, y)


# ------------------------------------------------------------------------------------------------
# benign builders
# ------------------------------------------------------------------------------------------------
def sk_logreg_pandas_joblib(d: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    df, y = _frame()
    joblib.dump(LogisticRegression().fit(df[["age", "income"]], y), d / "model.joblib")


def sk_logreg_pandas_joblib_zlib(d: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    df, y = _frame()
    joblib.dump(LogisticRegression().fit(df[["age", "income"]], y), d / "model.joblib", compress=3)


def sk_pipeline_pandas_joblib(d: Path) -> None:
    import joblib

    joblib.dump(_pipeline(), d / "pipeline.joblib")


def sk_pipeline_pandas_joblib_gzip(d: Path) -> None:
    import joblib

    joblib.dump(_pipeline(), d / "pipeline.joblib", compress=("gzip", 3))


def sk_pipeline_pandas_joblib_xz(d: Path) -> None:
    import joblib

    joblib.dump(_pipeline(), d / "pipeline.joblib", compress=("xz", 3))


def sk_pipeline_pandas_pickle(d: Path) -> None:
    (d / "pipeline.pkl").write_bytes(pickle.dumps(_pipeline(), protocol=5))


def sk_forest_numpy_joblib(d: Path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _arrays()
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0))
    joblib.dump(model.fit(x, y), d / "forest.joblib")


def sk_forest_numpy_pickle(d: Path) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = _arrays()
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y)
    (d / "model.pkl").write_bytes(pickle.dumps(model, protocol=4))


def _xgb():
    import xgboost as xgb

    x, y = _arrays()
    return xgb.train({"max_depth": 3, "objective": "binary:logistic", "nthread": 1},
                     xgb.DMatrix(x, label=y), num_boost_round=5)


def xgb_native_json(d: Path) -> None:
    _xgb().save_model(str(d / "model.json"))


def xgb_native_ubj(d: Path) -> None:
    _xgb().save_model(str(d / "model.ubj"))


def xgb_pickled_booster(d: Path) -> None:
    (d / "booster.pkl").write_bytes(pickle.dumps(_xgb()))


def xgb_sklearn_joblib(d: Path) -> None:
    import joblib
    import xgboost as xgb

    df, y = _frame()
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(df[["age", "income"]], y)
    joblib.dump(model, d / "model.joblib")


def _lgbm():
    import lightgbm as lgb

    x, y = _arrays()
    return lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
                     lgb.Dataset(x, label=y), num_boost_round=5)


def lgbm_native_txt(d: Path) -> None:
    _lgbm().save_model(str(d / "model.txt"))


def lgbm_pickled_booster(d: Path) -> None:
    (d / "booster.pkl").write_bytes(pickle.dumps(_lgbm()))


def _torch_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def torch_state_dict_pt(d: Path) -> None:
    import torch

    torch.save(_torch_net().state_dict(), d / "model.pt")


def torch_torchscript_pt(d: Path) -> None:
    import torch

    torch.jit.script(_torch_net()).save(str(d / "model.pt"))


def torch_safetensors(d: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _torch_net().state_dict().items()}, str(d / "model.safetensors"))


def numpy_safetensors(d: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(2)
    save_file({"w": rng.random((16, 8), dtype=np.float32), "b": np.zeros(8, np.float16),
               "ids": np.arange(10, dtype=np.int64)}, str(d / "weights.safetensors"), metadata={"format": "np"})


def _onnx_model(*, big: bool):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    n = 512 if big else 4
    w = numpy_helper.from_array(rng.random((4, n), dtype=np.float32), "W")
    b = numpy_helper.from_array(np.zeros(n, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "linear", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, n])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def onnx_inline(d: Path) -> None:
    import onnx

    onnx.save_model(_onnx_model(big=False), str(d / "model.onnx"))


def onnx_external_data(d: Path) -> None:
    import onnx

    onnx.save_model(_onnx_model(big=True), str(d / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=64)
    onnx.checker.check_model(str(d / "model.onnx"))


def numpy_npy_numeric(d: Path) -> None:
    np.save(d / "weights.npy", np.random.default_rng(4).random((32, 8)))


def numpy_npz_numeric(d: Path) -> None:
    np.savez_compressed(d / "weights.npz", w=np.ones((8, 8)), b=np.arange(8))


def numpy_npy_object(d: Path) -> None:
    np.save(d / "labels.npy", np.array(["cat", "dog", None, 3], dtype=object), allow_pickle=True)


def numpy_npz_object(d: Path) -> None:
    np.savez(d / "vocab.npz", words=np.array(["a", "b"], dtype=object), ids=np.arange(2))


def _keras(with_lambda: bool):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    layers = [keras.Input((4,)), keras.layers.Dense(8, activation="relu")]
    if with_lambda:
        layers.append(keras.layers.Lambda(lambda t: t * 2.0))
    layers.append(keras.layers.Dense(2))
    return keras.Sequential(layers)


def keras_dense(d: Path) -> None:
    _keras(False).save(str(d / "model.keras"))


def keras_functional_compiled(d: Path) -> None:
    """Functional model, trained one epoch: optimizer, loss, regularizer and backend modules in its config."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(50, 8)(inp)
    x = keras.layers.LSTM(4, return_sequences=True)(x)
    x = keras.layers.Conv1D(4, 3, activation="gelu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.L2(0.01))(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    rng = np.random.default_rng(5)
    model.fit(rng.integers(0, 50, (16, 10)), rng.integers(0, 3, 16), epochs=1, verbose=0)
    model.save(str(d / "model.keras"))


def hf_style_dir(d: Path) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vocab = {"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3}
    tensors = {"embeddings.word_embeddings.weight": torch.randn(len(vocab), 8),
               "encoder.layer.0.attention.self.query.weight": torch.randn(8, 8),
               "encoder.layer.0.attention.self.query.bias": torch.zeros(8)}
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 1, "vocab_size": len(vocab), "torch_dtype": "float32"}, indent=2))
    (d / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}}, indent=2))
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test model\n")


# ------------------------------------------------------------------------------------------------
# malicious builders
# ------------------------------------------------------------------------------------------------
def _pickle_payload(payload: str, protocol: int = 4) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        (d / "model.pkl").write_bytes(pickle.dumps(PAYLOADS[payload](), protocol=protocol))

    return build


def _joblib_nested(payload: str) -> Callable[[Path], None]:
    """A model fitted on a DataFrame, a large array, then the payload: the array bytes stop other scanners."""

    def build(d: Path) -> None:
        import joblib
        from sklearn.linear_model import LogisticRegression

        df, y = _frame()
        model = LogisticRegression().fit(df[["age", "income"]], y)
        joblib.dump({"model": model, "coef": np.arange(4096.0), "hook": PAYLOADS[payload]()}, d / "model.joblib")

    return build


def joblib_compressed_payload(d: Path) -> None:
    import joblib

    joblib.dump({"coef": np.arange(4096.0), "hook": SubprocessPopen()}, d / "model.joblib", compress=3)


def _torch_zip(payload: str) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        import torch

        torch.save({"state_dict": _torch_net().state_dict(), "hook": PAYLOADS[payload]()}, d / "model.pt")

    return build


def _disguised(ext: str, protocol: int) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        (d / f"model{ext}").write_bytes(pickle.dumps(OsSystem(), protocol=protocol))

    return build


def numpy_npy_object_payload(d: Path) -> None:
    np.save(d / "labels.npy", np.array([1, OsSystem()], dtype=object), allow_pickle=True)


def _onnx_external(location: str) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        import onnx
        from onnx.external_data_helper import set_external_data

        model = _onnx_model(big=False)
        w = model.graph.initializer[0]
        set_external_data(w, location=location, offset=0, length=64)
        w.data_location = onnx.TensorProto.EXTERNAL
        w.ClearField("raw_data")
        w.ClearField("float_data")
        onnx.save_model(model, str(d / "model.onnx"))

    return build


def keras_lambda(d: Path) -> None:
    _keras(True).save(str(d / "model.keras"))


def keras_lambda_config_only(d: Path) -> None:
    """The same Lambda model with only config.json kept (Keras builds it without metadata or weights)."""
    import io
    import zipfile

    keras_lambda(d)
    full = (d / "model.keras").read_bytes()
    with zipfile.ZipFile(io.BytesIO(full)) as zin, zipfile.ZipFile(d / "model.keras", "w") as zout:
        zout.writestr("config.json", zin.read("config.json"))


def safetensors_lying_offsets(d: Path) -> None:
    """A real safetensors file whose header is rewritten to claim offsets beyond / across its data."""
    from safetensors.numpy import save_file

    path = d / "model.safetensors"
    save_file({"a": np.ones(16, np.float32), "b": np.zeros(16, np.float32)}, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["a"]["data_offsets"] = [0, 64]
    header["b"]["data_offsets"] = [32, 1 << 40]  # overlaps "a" and points far past the end
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def safetensors_overlapping(d: Path) -> None:
    from safetensors.numpy import save_file

    path = d / "model.safetensors"
    save_file({"a": np.ones(16, np.float32), "b": np.zeros(16, np.float32)}, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["b"]["data_offsets"] = list(header["a"]["data_offsets"])  # two tensors share bytes
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


# ------------------------------------------------------------------------------------------------
# the corpus
# ------------------------------------------------------------------------------------------------
UNSAFE_FORMAT = frozenset({"model_scan.unscannable"})

BUILDERS: dict[str, tuple[Artefact, Callable[[Path], None]]] = {}


def _add(artefact: Artefact, build: Callable[[Path], None]) -> None:
    BUILDERS[artefact.name] = (artefact, build)


for _fn in (sk_logreg_pandas_joblib, sk_logreg_pandas_joblib_zlib, sk_pipeline_pandas_joblib,
            sk_pipeline_pandas_joblib_gzip, sk_pipeline_pandas_joblib_xz, sk_pipeline_pandas_pickle,
            sk_forest_numpy_joblib, sk_forest_numpy_pickle, xgb_pickled_booster, xgb_sklearn_joblib,
            lgbm_pickled_booster, torch_state_dict_pt, torch_torchscript_pt, numpy_npy_object, numpy_npz_object):
    _add(Artefact(_fn.__name__, benign=True), _fn)
for _fn in (xgb_native_json, xgb_native_ubj, lgbm_native_txt, torch_safetensors, numpy_safetensors, onnx_inline,
            onnx_external_data, numpy_npy_numeric, numpy_npz_numeric, keras_dense, keras_functional_compiled,
            hf_style_dir):
    _add(Artefact(_fn.__name__, benign=True, pickle_free=True), _fn)
for _payload in PAYLOADS:
    _add(Artefact(f"pickle_{_payload}", benign=False, expect=DANGEROUS), _pickle_payload(_payload))
    _add(Artefact(f"joblib_nested_{_payload}", benign=False, expect=DANGEROUS), _joblib_nested(_payload))
    _add(Artefact(f"torch_zip_{_payload}", benign=False, expect=DANGEROUS), _torch_zip(_payload))
for _fn in (joblib_compressed_payload, numpy_npy_object_payload):
    _add(Artefact(_fn.__name__, benign=False, expect=DANGEROUS), _fn)
for _ext in (".json", ".onnx", ".txt"):
    for _proto in range(6):
        _add(Artefact(f"disguised{_ext.replace('.', '_')}_protocol{_proto}", benign=False, expect=DISGUISED),
             _disguised(_ext, _proto))
for _name, _loc in (("parent", "../outside.bin"), ("deep_parent", "weights/../../../etc/passwd"),
                    ("absolute", "/etc/passwd")):
    _add(Artefact(f"onnx_external_data_{_name}", benign=False,
                  expect=frozenset({"model_scan.external_data_path"})), _onnx_external(_loc))
_add(Artefact("keras_lambda", benign=False, expect=frozenset({"model_scan.unsafe_layer"})), keras_lambda)
_add(Artefact("keras_lambda_config_only", benign=False, expect=frozenset({"model_scan.unsafe_layer"})),
     keras_lambda_config_only)
_add(Artefact("safetensors_lying_offsets", benign=False, expect=UNSAFE_FORMAT), safetensors_lying_offsets)
_add(Artefact("safetensors_overlapping", benign=False, expect=UNSAFE_FORMAT), safetensors_overlapping)

BENIGN = sorted(n for n, (a, _) in BUILDERS.items() if a.benign)
MALICIOUS = sorted(n for n, (a, _) in BUILDERS.items() if not a.benign)


def build_corpus(root: Path, marker: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build every artefact (or ``names``) under ``root``; returns name -> model directory."""
    _MARKER[0] = str(marker)
    out: dict[str, Path] = {}
    for name in names or sorted(BUILDERS):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        BUILDERS[name][1](d)
        out[name] = d
    return out


def library_versions() -> dict[str, str]:
    """Versions of the libraries that made the corpus (for the README and test ids)."""
    from importlib.metadata import version

    out = {name: version(name) for name in ("scikit-learn", "joblib", "pandas", "numpy", "lightgbm", "torch",
                                            "safetensors", "onnx", "keras")}
    out["xgboost"] = version("xgboost-cpu")  # the CPU-only wheel of xgboost
    return out
