"""Drift gate: compare a current table with a reference table, feature by feature.

Per feature:

* numeric: PSI over bins cut at the reference's quantiles (``bins`` of them,
  fewer when quantiles coincide), plus a bin for missing / non-finite values;
  and the two-sample Kolmogorov-Smirnov statistic and p-value (equal to
  ``scipy.stats.ks_2samp``, see below);
* categorical (strings, booleans, or columns the policy declares categorical):
  PSI over the categories of both tables plus missing; categories absent from
  the reference are findings (``drift.unseen_category``).

PSI = sum((cur - ref) * ln(cur / ref)) over bins, with proportions of 0
replaced by ``psi_epsilon`` so an empty bin gives a large, finite value.
Thresholds come from the policy: a default for every feature, overridden per
feature metric by metric. NaN (e.g. KS on a feature with no current values)
never satisfies a threshold.

Results carry aggregates only: category names never leave the process except
in the HTML report, and only for categories seen at least
``category_label_min_count`` times in the reference (numeric bin edges are
never shown, being data values).

Both tables are streamed batch by batch (memory does not grow with rows): a
numeric feature keeps a value sketch per table (:class:`~airflow_aisec.core.stats.ValueSketch`,
exact frequency table up to ``sketch_bins`` distinct values), a categorical one
its category counts. Quantile edges are exact (``np.quantile``): when the
reference has more distinct values than ``sketch_bins``, the bins holding an
edge are read again (one more pass over the reference, rarely two), and the
reference's bin counts once more if an edge falls inside a merged bin. KS is
exact (scipy's statistic and p-value, bit for bit) while both sketches are
exact; otherwise the statistic is known within ``ks_error_bound`` (the largest
share of either sample in one merged bin, next to the gap before it) and a
threshold inside ``[ks_statistic, ks_statistic_upper]`` fails closed.

The policy section is :class:`~airflow_aisec.core.policy.sections.drift.DriftPolicy`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift._columns import Batch, wide_csv_batches
from airflow_aisec.core.gates.drift._evaluate import TableSource, evaluate_sources, resolve_features
from airflow_aisec.core.gates.drift._judge import GATE
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.result import CheckOutcome, InputRef
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["GATE", "check_drift"]


@contextlib.contextmanager
def _open_both(section: DriftPolicy, reference: str, current: str, features: Sequence[str] | str | None,
               s3_client: Any) -> Iterator[tuple[TableSource, TableSource, list[str], list[InputRef]]]:
    """Open both tables as streamed sources of the compared columns (others are never parsed)."""
    from airflow_aisec.core.io.column_blocks import threads_for
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import (
        DEFAULT_BATCH_ROWS,
        detect_format,
        iter_batches,
        local_copy,
        open_dataset,
    )

    ref_fmt, cur_fmt = detect_format(reference), detect_format(current)
    with local_copy(reference, s3_client=s3_client) as ref_copy, \
            local_copy(current, s3_client=s3_client) as cur_copy:
        ref_ds = open_dataset(ref_copy.path, ref_fmt, uri=reference)
        cur_ds = open_dataset(cur_copy.path, cur_fmt, uri=current)
        names_of = {"reference": ref_ds.names, "current": cur_ds.names}
        chosen = resolve_features(section, names_of["reference"], features)
        sources = []
        for ds_, which, uri in ((ref_ds, "reference", reference), (cur_ds, "current", current)):
            if which == "reference" or names_of["current"] != names_of["reference"]:  # the same: checked
                names = set(names_of[which])
                missing = [c for c in chosen if c not in names]
                if missing:
                    raise InputDataError(f"column(s) not in the {which} table: {', '.join(map(repr, missing))}")

            def batches(columns: list[str], ds_: Any = ds_, uri: str = uri) -> Iterator[pa.RecordBatch]:
                yield from iter_batches(ds_, columns=columns, uri=uri, use_threads=threads_for(ds_, len(columns)))

            def blocks(columns: list[str], ds_: Any = ds_, uri: str = uri) -> Iterator[Batch] | None:
                return wide_csv_batches(ds_, columns, DEFAULT_BATCH_ROWS, uri)

            sources.append(TableSource(column_lists=ds_.column_lists, batches=batches, name=uri, blocks=blocks))
        inputs = [InputRef(uri=reference, sha256=sha256_file(ref_copy.path)),
                  InputRef(uri=current, sha256=sha256_file(cur_copy.path))]
        yield sources[0], sources[1], chosen, inputs


def check_drift(
    section: DriftPolicy,
    reference: str,
    current: str,
    *,
    features: Sequence[str] | str | None = None,
    report: str | None = None,
    report_meta: Mapping[str, Any] | None = None,
    s3_client: Any = None,
    report_s3_client: Any = None,
) -> CheckOutcome:
    """The drift gate's core check.

    Args:
        section: The ``drift`` policy section.
        reference: Reference table (local path or ``s3://``; CSV or Parquet).
        current: Current table.
        features: Features to compare, added to the policy's (list or comma-separated).
        report: Where to write the HTML report (local path or ``s3://``); None for no report.
        report_meta: Header fields for the report.
        s3_client: boto3 client for reading ``s3://`` tables.
        report_s3_client: boto3 client for an ``s3://`` report (default: ``s3_client``).

    Returns:
        Findings, metrics, input digests and the report reference.
    """
    with _open_both(section, str(reference), str(current), features, s3_client) as (ref, cur, chosen, inputs):
        evaluation = evaluate_sources(section, ref, cur, chosen)
    outcome = CheckOutcome(findings=evaluation.findings, metrics=evaluation.metrics, inputs=inputs)
    if report:
        from airflow_aisec.core.gates.drift._report import render_drift_report
        from airflow_aisec.core.report import write_report

        html_text = render_drift_report(evaluation.metrics, evaluation.findings, inputs=inputs,
                                        meta=report_meta or {}, labels=evaluation.report_labels)
        ref, digest = write_report(html_text, report, name="drift-report", s3_client=report_s3_client or s3_client)
        outcome.reports.append(ref)
        outcome.metrics["report_sha256"] = digest
    return outcome
