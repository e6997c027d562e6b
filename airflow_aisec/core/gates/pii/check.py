"""PII classification gate: which columns of a table carry which personal data, against the policy.

For each column of a CSV or Parquet table (local or ``s3://``) the gate finds
the entity types it carries (e-mail, phone, SSN, card, IBAN, IP, passport, bank
account, URL; PERSON / LOCATION with a user-configured NLP model), how many
cells and which share of the scanned rows. The policy section
(:class:`~airflow_aisec.core.policy.sections.pii.PiiPolicy`) says, for the dataset's
declared classification (``public`` unless declared otherwise), which entity
types are allowed; a column carrying any other one is a finding
``pii.entity_not_allowed``. Findings name the column, entity, count, share and a
few row positions, never a value.

Detection is Presidio's patterns and validators behind a vectorized RE2
pre-filter (:mod:`._patterns`). Tables stream in batches, so memory follows the
batch size, not the file. A scan is full or a seeded sample, and the result
records which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_aisec.core.collector import collector_paused
from airflow_aisec.core.gates.pii._classify import classify
from airflow_aisec.core.gates.pii._scan import scan_table

if TYPE_CHECKING:
    from airflow_aisec.core.policy.sections.pii import Classification, PiiPolicy
    from airflow_aisec.core.result import CheckOutcome

GATE = "pii"


def check_pii(
    section: PiiPolicy,
    uri: str,
    *,
    classification: str | Classification | None = None,
    s3_client: Any = None,
    fmt: str | None = None,
) -> CheckOutcome:
    """The pii gate's check: scan ``uri`` and judge it at its classification.

    Args:
        section: The policy's ``pii`` section (glue code passes ``loaded.section("pii")``).
        uri: Local path or ``s3://`` URI of a CSV or Parquet table.
        classification: Declared level; the policy's ``default_classification`` when omitted.
        s3_client: boto3 client for ``s3://`` inputs.
        fmt: ``csv`` / ``parquet`` (default: from the extension).

    Returns:
        Findings (``pii.entity_not_allowed``) and the column classification in metrics.
    """
    level = section.resolve_classification(classification)
    with collector_paused():  # a result per column
        report = scan_table(section, uri, s3_client=s3_client, fmt=fmt)
        return classify(section, report, level)
