"""Bias metrics: the gate's vectorized (numpy bincount) metrics vs fairlearn 0.15, same run, same data.

Computes demographic parity difference/ratio and equalized odds difference/ratio (plus equal
opportunity difference) on 1M rows x 10 groups with fairlearn's public functions and with
``airflow_aisec.core.gates.bias._metrics``, asserts the numbers are equal (1e-9), and prints the
speed-up. Target: at least 100x.

Usage::

    python bench/bench_bias.py [--rows 1000000] [--groups 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pyarrow as pa

TARGET_RATIO = 100.0
METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)


def make_data(rows: int, groups: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    y = rng.integers(0, 2, rows)
    # group-dependent selection rates, so the metrics are not trivially 0
    p = (rng.random(rows) < 0.3 + 0.04 * g).astype(np.int64)
    labels = np.array([f"group-{i:02d}" for i in range(groups)], dtype=object)[g]
    return y, p, labels


def ours(y: np.ndarray, p: np.ndarray, sensitive: pa.Array) -> dict[str, float]:
    """What the gate does: dictionary-encode the sensitive column, one bincount, all metrics."""
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.bias._metrics import ConfusionCounts, fairness_metrics

    encoded = pc.dictionary_encode(sensitive)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    counts = ConfusionCounts.from_arrays(y, p, codes, len(encoded.dictionary))
    result = fairness_metrics(counts)
    return {m: float(result.disparities[m]) for m in METRICS}


def theirs(y: np.ndarray, p: np.ndarray, sensitive: np.ndarray) -> dict[str, float]:
    import fairlearn.metrics as flm

    return {m: float(getattr(flm, m)(y, p, sensitive_features=sensitive)) for m in METRICS}


def best_of(fn, repeat: int) -> tuple[float, dict[str, float]]:
    times, out = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the fast path (best time counts)")
    args = parser.parse_args(argv)

    y, p, labels = make_data(args.rows, args.groups, args.seed)
    sensitive = pa.array(labels, type=pa.string())
    print(f"data: {args.rows:,} rows x {args.groups} groups; metrics: {', '.join(METRICS)}")

    ours(y[:1000], p[:1000], sensitive[:1000])  # warm imports outside the timing
    t_ours, ours_values = best_of(lambda: ours(y, p, sensitive), args.repeat)

    import fairlearn.metrics  # noqa: F401 - import outside the timing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_fl, fl_values = best_of(lambda: theirs(y, p, labels), 1)

    print(f"{'metric':<32} {'fairlearn':>22} {'aisec':>22} {'|diff|':>10}")
    worst = 0.0
    for m in METRICS:
        a, b = fl_values[m], ours_values[m]
        diff = 0.0 if (np.isnan(a) and np.isnan(b)) else abs(a - b)
        worst = max(worst, diff)
        print(f"{m:<32} {a:>22.17f} {b:>22.17f} {diff:>10.1e}")
    assert worst <= 1e-9, f"numbers differ from fairlearn: max |diff| {worst:.3e}"

    ratio = t_fl / t_ours
    print(f"fairlearn 0.15: {t_fl:8.3f} s")
    print(f"aisec bincount: {t_ours:8.4f} s (best of {args.repeat}, incl. encoding the sensitive column)")
    print(f"ratio: {ratio:,.0f}x (target >= {TARGET_RATIO:.0f}x) -> {'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")

    # For information: the whole in-memory gate evaluation (label mapping, findings, all metrics).
    from airflow_aisec.core.gates.bias import evaluate_bias, resolve_columns
    from airflow_aisec.core.policy.sections.bias import BiasPolicy

    table = pa.table({"y": y, "p": p, "g": sensitive})
    policy = BiasPolicy(label="y", prediction="p", sensitive=["g"])
    t_gate, _ = best_of(lambda: evaluate_bias(policy, table, resolve_columns(policy)), 3)
    print(f"full evaluate_bias on the table (all metrics, findings): {t_gate:.3f} s")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
