"""The pii gate: which columns of a table carry which personal data, and redacted copies.

Public API (the policy section is :mod:`airflow_aisec.core.policy.sections.pii`):

* :func:`check_pii` (``section, uri, *, classification, s3_client, fmt``): the gate's check;
* :func:`redact_table` (``section, src, dst, *, classification, vault, key_provider, s3_client, ...``):
  a redacted copy, re-scanned before it is published;
* :func:`scan_table` / :func:`classify` / :class:`ScanReport`: the two halves of the check.

Modules: ``check`` (entry point), ``redact`` (redaction and its HMAC key), ``_scan`` (counting
entities per column), ``_classify`` (findings), ``_table`` (reading tables), ``_detect``
(column-level detection), ``_patterns`` (Presidio-backed detector), ``_validators`` (vectorized
and offline validators, chance correction), ``_matches`` (matches and overlaps), ``_presidio``
(NLP scanner, log silencing), ``_rewrite`` (cell rewriting). Heavy libraries (pyarrow, numpy,
presidio, spaCy) are imported inside functions.
"""

from airflow_aisec.core.gates.pii._classify import RULE_NAME, RULE_NOT_ALLOWED, classify
from airflow_aisec.core.gates.pii._scan import ScanReport, scan_table
from airflow_aisec.core.gates.pii.check import check_pii
from airflow_aisec.core.gates.pii.redact import RULE_RESIDUAL, redact_table

__all__ = [
    "RULE_NAME",
    "RULE_NOT_ALLOWED",
    "RULE_RESIDUAL",
    "ScanReport",
    "check_pii",
    "classify",
    "redact_table",
    "scan_table",
]
