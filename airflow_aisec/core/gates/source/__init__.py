"""Source validation gate: is this dataset what we agreed to train on?

For each dataset (CSV or Parquet, local path or ``s3://``), checked against the policy's
``source`` section (schema: :mod:`airflow_aisec.core.policy.sections.source`):

* **origin** (:mod:`._origin`): the URI must match an allow-list glob (``s3://bucket-glob/key-glob``
  or a local ``file:///path-glob``). Local paths are resolved (symlinks, ``..``) before matching, S3
  keys with ``.``/``..`` segments are refused. A dataset from anywhere else is refused *before any
  byte is read*: an :class:`~airflow_aisec.exceptions.InputDataError` (exit 2), never waivable.
* **pinned content** (:mod:`._pins`): sha256 from an inline manifest or a manifest file, and/or the
  S3 ``VersionId`` / ``ETag`` recorded at approval time (``aisec source pin`` prints them).
* **freshness** (:mod:`._freshness`: object / file modification time, or the newest value of a
  timestamp column) and **row-count bounds**.
* **schema** (:mod:`._schema`): column types (pyarrow type names or families such as ``integer``,
  ``string``) and, unless allowed, no extra columns.
* **Great Expectations** expectations (:mod:`._expectations`).
* **poisoning signals** against a reference dataset (:mod:`._poisoning`).

Everything streams in batches of ``batch_rows`` rows (:mod:`._scan`): memory is bounded by the
batch size, not the file size (limits: whole-table GX expectations, and one Parquet row group). S3
objects are downloaded to a temporary file first (disk, not memory), exactly the version whose
metadata was checked. Findings carry counts, column names, digests and URIs, never cell values.

Relative paths written in the policy (reference, suite, manifest, local origin globs, manifest
keys) are resolved against ``base_dir``: glue code passes ``policy_dir(loaded.source)``, the policy
file's directory.
"""

from airflow_aisec.core.gates.source._context import policy_dir
from airflow_aisec.core.gates.source.check import check_sources, pin_sources

__all__ = ["check_sources", "pin_sources", "policy_dir"]
