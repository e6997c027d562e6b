"""The ``drift`` gate: compare a current table with a reference table, feature by feature.

:func:`check_drift` reads both tables and runs the check (:mod:`.check`); :func:`evaluate_drift`
does the same on tables already in memory; both stream record batches, so memory does not grow with
rows. Private modules: ``_statistics`` (PSI, quantile bins, exact order statistics and KS from value
sketches), ``_features`` (per-feature accumulators), ``_block`` / ``_categories`` (all numeric / categorical
features at once, as matrices for small/wide tables), ``_columns`` (a batch as per-column arrays or
same-typed groups; a wide CSV file read as groups), ``_evaluate`` (feature selection, the passes
over both tables), ``_judge`` (findings and the metrics document, shared with partition merges), ``_report`` (HTML report). Nothing heavy (numpy, pyarrow, scipy) is imported here.
"""

from airflow_aisec.core.gates.drift._evaluate import evaluate_drift, resolve_features
from airflow_aisec.core.gates.drift._judge import GATE, DriftEvaluation
from airflow_aisec.core.gates.drift._report import render_drift_report
from airflow_aisec.core.gates.drift._statistics import bin_counts, psi, quantile_edges
from airflow_aisec.core.gates.drift.check import check_drift

__all__ = [
    "GATE",
    "DriftEvaluation",
    "bin_counts",
    "check_drift",
    "evaluate_drift",
    "psi",
    "quantile_edges",
    "render_drift_report",
    "resolve_features",
]
