"""A wide drift case: reference and current CSV tables of many numeric features, nearly all drifting."""

from __future__ import annotations

from pathlib import Path


def write_wide_drift_case(folder: Path, features: int = 1500, rows: int = 5) -> tuple[Path, Path, Path]:
    """``(reference.csv, current.csv, policy.yaml)`` in ``folder``: ``features`` columns x ``rows`` rows, the
    current one shifted by 3 standard deviations; the policy's drift section is all defaults."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = [f"c{i}" for i in range(features)]
    reference, current, policy = folder / "ref.csv", folder / "cur.csv", folder / "wide-drift.yaml"
    pd.DataFrame(rng.normal(size=(rows, features)), columns=columns).to_csv(reference, index=False)
    pd.DataFrame(rng.normal(3, 1, size=(rows, features)), columns=columns).to_csv(current, index=False)
    policy.write_text("version: 1\nname: wide\ndrift: {}\n")
    return reference, current, policy
