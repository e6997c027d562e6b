"""Bias gate: group fairness metrics of a predictions table, checked against policy thresholds.

Input is a table (CSV / Parquet, local or ``s3://``) with a label column, a
prediction column (or a score column plus ``score_threshold``), optionally a
score column, and one or more sensitive-feature columns. For every sensitive
column (and every intersection the policy asks for) the gate computes per-group
selection rate, accuracy, TPR, FPR, FNR (and ROC AUC with a score), and the
between-group metrics (demographic parity, equalized odds, equal opportunity,
accuracy/FPR/FNR differences and ratios) with fairlearn's definitions, computed
by ``_metrics`` from one ``bincount``.

Pitfalls are findings, never silent passes: groups below ``min_group_size``
(with their count), groups without positive (or negative) labels where a
thresholded metric needs them (fairlearn silently reports a rate of 0 there),
undefined metrics (NaN never satisfies a threshold), missing sensitive values
(their own group, or a finding, per policy). Bad input (missing column, empty
table, non-binary label/prediction not mapped by the policy, a single group) is
an :class:`~airflow_aisec.exceptions.InputDataError`: exit 2 / failed task.

Group labels are the sensitive columns' category names; a group smaller than

The policy section is :class:`~airflow_aisec.core.policy.sections.bias.BiasPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.bias._columns import resolve_columns
from airflow_aisec.core.gates.bias._evaluate import GATE, evaluate_bias
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.result import CheckOutcome, InputRef
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["GATE", "check_bias"]


def _read_input(uri: str, columns: list[str], s3_client: Any) -> tuple[pa.Table, InputRef]:
    """Read only the needed columns; digest the file as read (S3 objects via their downloaded copy)."""
    import pyarrow as pa

    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import detect_format, iter_batches, local_copy, open_dataset

    fmt = detect_format(uri)
    with local_copy(uri, s3_client=s3_client) as copy:
        digest = sha256_file(copy.path)
        dataset = open_dataset(copy.path, fmt, uri=uri)
        batches = list(iter_batches(dataset, columns=columns, uri=uri))
        schema = pa.schema([dataset.schema.field(c) for c in columns])
        table = pa.Table.from_batches(batches, schema=schema)
    if table.num_rows == 0:
        raise InputDataError(f"{uri}: the table is empty")
    return table, InputRef(uri=uri, sha256=digest)


def check_bias(
    section: BiasPolicy,
    data: str,
    *,
    label: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    sensitive: Sequence[str] | str | None = None,
    report: str | None = None,
    report_meta: Mapping[str, Any] | None = None,
    s3_client: Any = None,
    report_s3_client: Any = None,
) -> CheckOutcome:
    """The bias gate's core check.

    Args:
        section: The ``bias`` policy section.
        data: Predictions table: local path or ``s3://`` URI (CSV or Parquet).
        label: Label column (merged with the policy's).
        prediction: Prediction column.
        score: Score column.
        sensitive: Sensitive columns (list or comma-separated), added to the policy's.
        report: Where to write the HTML report (local path or ``s3://``); None for no report.
        report_meta: Header fields for the report (policy name/digest, DAG/run/task).
        s3_client: boto3 client for reading ``s3://`` data.
        report_s3_client: boto3 client for writing an ``s3://`` report (default: ``s3_client``).

    Returns:
        Findings, metrics, the input digest and the report reference.

    Raises:
        ConfigurationError: columns not resolvable. InputDataError: bad input.
        ServiceUnavailableError / AccessDeniedError: S3 problems.
    """
    columns = resolve_columns(section, label=label, prediction=prediction, score=score, sensitive=sensitive)
    table, input_ref = _read_input(str(data), columns.all, s3_client)
    evaluation = evaluate_bias(section, table, columns)
    outcome = CheckOutcome(findings=evaluation.findings, metrics=evaluation.metrics, inputs=[input_ref])
    if report:
        from airflow_aisec.core.gates.bias._report import render_bias_report
        from airflow_aisec.core.report import write_report

        html_text = render_bias_report(
            evaluation.metrics, evaluation.findings, inputs=[input_ref], meta=report_meta or {}
        )
        ref, digest = write_report(html_text, report, name="bias-report",
                                   s3_client=report_s3_client or s3_client)
        outcome.reports.append(ref)
        outcome.metrics["report_sha256"] = digest
    return outcome
