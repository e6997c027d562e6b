"""Bias gate: group fairness metrics of a predictions table, checked against policy thresholds.

Input is a table (CSV / Parquet, local or ``s3://``) with a label column, a
prediction column (or a score column plus ``score_threshold``), optionally a
score column, and one or more sensitive-feature columns. For every sensitive
column (and every intersection the policy asks for) the gate computes per-group
selection rate, accuracy, TPR, FPR, FNR (and ROC AUC with a score), and the
between-group metrics (demographic parity, equalized odds, equal opportunity,
accuracy/FPR/FNR differences and ratios) with fairlearn's definitions, computed
by ``_metrics`` from per-group confusion counts.

The table is streamed batch by batch (``_stream``): memory holds per-group
counts and, with a score column, a score sketch per grouping, never the rows.
ROC AUC is exact (scikit-learn's) while a grouping has at most ``sketch_bins``
distinct (group, score) pairs; beyond, scores are merged into bins and each AUC
carries ``roc_auc_error_bound`` (half the share of positive/negative pairs
within a merged bin); a threshold within that bound fails closed.

Pitfalls are findings, never silent passes: groups below ``min_group_size``
(with their count), groups without positive (or negative) labels where a
thresholded metric needs them (fairlearn silently reports a rate of 0 there),
undefined metrics (NaN never satisfies a threshold), missing sensitive values
(their own group, or a finding, per policy). Bad input (missing column, empty
table, non-binary label/prediction not mapped by the policy, a single group) is
an :class:`~airflow_aisec.exceptions.InputDataError`: exit 2 / failed task.

Group labels are the sensitive columns' category names; a group smaller than
``min_group_size`` is named ``<small group N>`` unless ``reveal_small_group_labels``.

The policy section is :class:`~airflow_aisec.core.policy.sections.bias.BiasPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_aisec.core.gates.bias._columns import BiasColumns, resolve_columns
from airflow_aisec.core.gates.bias._evaluate import GATE, BiasEvaluation, evaluate_stream
from airflow_aisec.core.gates.bias._stream import BiasStream
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.result import CheckOutcome, InputRef
from airflow_aisec.exceptions import InputDataError

__all__ = ["GATE", "check_bias"]


def _stream_input(section: BiasPolicy, uri: str, columns: BiasColumns, s3_client: Any
                  ) -> tuple[BiasEvaluation, InputRef]:
    """Stream only the needed columns batch by batch into the counts; digest the file as read."""
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import detect_format, iter_batches, local_copy, open_dataset

    fmt = detect_format(uri)
    with local_copy(uri, s3_client=s3_client) as copy:
        digest = sha256_file(copy.path)
        dataset = open_dataset(copy.path, fmt, uri=uri, csv_columns=columns.all)
        stream = None
        for batch in iter_batches(dataset, columns=columns.all, uri=uri):
            if stream is None:
                stream = BiasStream(section, columns, batch.schema)
            stream.add(batch)
    if stream is None or stream.rows == 0:
        raise InputDataError(f"{uri}: the table is empty")
    return evaluate_stream(section, stream), InputRef(uri=uri, sha256=digest)


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
    evaluation, input_ref = _stream_input(section, str(data), columns, s3_client)
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
