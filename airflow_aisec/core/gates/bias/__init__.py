"""The ``bias`` gate: group fairness metrics of a predictions table against the policy's thresholds.

:func:`check_bias` reads a table and runs the check (:mod:`.check`); :func:`evaluate_bias` does the
same on a table already in memory; both stream record batches (memory flat in rows). Private modules:
``_columns`` (policy + caller columns), ``_encoding`` (columns as codes), ``_stream`` (counts and
score sketches accumulated batch by batch), ``_grouping`` (per-grouping metrics and pitfalls),
``_metrics`` (fairlearn-equal metrics from confusion counts, ROC AUC from a score sketch, numpy), ``_evaluate`` (findings and the metrics
document), ``_report`` (HTML report). Nothing heavy (numpy, pyarrow) is imported here.
"""

from airflow_aisec.core.gates.bias._columns import BiasColumns, resolve_columns
from airflow_aisec.core.gates.bias._evaluate import GATE, BiasEvaluation, evaluate_bias
from airflow_aisec.core.gates.bias._report import render_bias_report
from airflow_aisec.core.gates.bias.check import check_bias

__all__ = [
    "GATE",
    "BiasColumns",
    "BiasEvaluation",
    "check_bias",
    "evaluate_bias",
    "render_bias_report",
    "resolve_columns",
]
