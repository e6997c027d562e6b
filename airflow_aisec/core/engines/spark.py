"""The pii gate on Spark: the same per-batch core on the executors (``mapInArrow``), merged on the driver.

The driver lists the Parquet files, reads their schema and decides what to scan exactly as the
single-node gate does (:class:`~airflow_aisec.core.gates.pii.summary.ScanSetup`). Spark reads the
columns plus each row's file and row index (``_metadata.file_path`` / ``_metadata.row_index``);
every executor task counts its Arrow batches into one value-free
:class:`~airflow_aisec.core.gates.pii.summary.PiiSummary` and returns it as signed JSON. The driver
verifies the digests, merges, checks that every row of every file was counted once (row counts from
the Parquet footers), and :func:`~airflow_aisec.core.gates.pii.summary.check_summary` applies the
policy: the result equals ``check_pii`` on the same data (``--engine local``).

Executors need this package and its pattern libraries, no model and no network: a policy with
``pii.nlp.enabled`` (a spaCy model) is refused, as are CSV inputs (Spark gives no row index for CSV,
so positions could not match) and ``s3://`` (point Spark at the data with its own file system
instead). PySpark is imported inside the functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.gates.pii.summary import PiiSummary
    from airflow_aisec.core.policy.sections.pii import Classification, PiiPolicy
    from airflow_aisec.core.result import CheckOutcome

_FILE = "__aisec_file"
_ROW = "__aisec_row"


def spark_session(master: str | None = None, *, app_name: str = "aisec-pii") -> Any:
    """A SparkSession (``local[*]`` by default) whose Python workers run this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigurationError("--engine spark needs pyspark (the 'spark' extra) and a Java runtime") from None

    builder = SparkSession.builder.appName(app_name).config("spark.ui.enabled", "false") \
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
    return builder.master(master or "local[*]").getOrCreate()


def _normalize(path: str) -> str:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(path)
    local = unquote(parsed.path) if parsed.scheme in ("file", "") else path
    return os.path.realpath(local)


def _runs(positions: Any) -> list[list[int]]:
    """Sorted distinct positions as half-open contiguous ranges."""
    import numpy as np

    if len(positions) == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(positions) - 1]))
    return [[int(positions[s]), int(positions[e]) + 1] for s, e in zip(starts, ends, strict=True)]


def summarize_batches(section_json: dict[str, Any], header: dict[str, Any], files: dict[str, str],
                      batches: Iterator[Any]) -> Iterator[Any]:
    """The executor side of ``mapInArrow``: Arrow batches in, one signed summary (a JSON string) out."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.pii.summary import ScanSetup
    from airflow_aisec.core.partitions import Coverage
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    setup = ScanSetup.from_header(PiiPolicy.model_validate(section_json), header)
    merged = None
    for batch in batches:
        paths = batch.column(_FILE)
        for spark_path in pc.unique(paths).to_pylist():
            uri = files.get(_normalize(spark_path))
            if uri is None:
                raise InputDataError("Spark read a file the driver did not list")
            mask = pc.equal(paths, pa.scalar(spark_path))
            part = batch.filter(mask)
            rows = part.column(_ROW).to_numpy(zero_copy_only=False).astype(np.int64)
            order = np.argsort(rows, kind="stable")
            part, rows = part.take(pa.array(order)), rows[order]
            if len(np.unique(rows)) != len(rows):
                raise InputDataError(f"{uri}: Spark delivered a row twice")
            summary = setup.summarize([(part.select(setup.columns), rows)], partition_id=uri, uri=uri,
                                      order=[uri, -1])
            entry = summary.coverage.parts[uri]
            summary.coverage = Coverage({uri: {**entry, "rows": len(rows), "ranges": _runs(rows)}})
            merged = summary if merged is None else merged.merge(summary)
    if merged is not None:
        yield pa.RecordBatch.from_pydict({"summary": [json.dumps(merged.signed_json())]})


def _parquet_files(data: str) -> list[str]:
    from airflow_aisec.core.io.storage import is_s3_uri
    from airflow_aisec.core.partitions import list_partitions

    if is_s3_uri(data):
        raise ConfigurationError("--engine spark reads local or cluster file systems, not s3:// through boto3; "
                                 "use --engine local or mapped tasks for s3:// data")
    files = list_partitions(data, by="file")
    not_parquet = [f for f in files if not f.lower().endswith((".parquet", ".pq"))]
    if not_parquet:
        raise ConfigurationError(f"{not_parquet[0]}: --engine spark scans Parquet only (Spark gives no row "
                                 "positions for CSV); use --engine local")
    return files


def pii_summary_spark(section: PiiPolicy, data: str, *, spark: Any = None, master: str | None = None) -> PiiSummary:
    """Summarize every row of ``data`` (a Parquet file or a directory of them) on Spark.

    Raises:
        ConfigurationError: CSV or ``s3://`` input, a sampled scan, an NLP model in the policy.
        InputDataError: files with different schemas, rows not counted exactly once.
    """
    import json

    import pyarrow.parquet as pq

    from airflow_aisec.core.gates.pii._table import open_for_scan
    from airflow_aisec.core.gates.pii.summary import ScanSetup, refuse_sample
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.partitions import load_summary, merge_all

    refuse_sample(section)
    if section.nlp.enabled:
        raise ConfigurationError("pii.nlp needs a spaCy model on every executor; --engine spark runs without "
                                 "models: use --engine local or mapped tasks")
    files = _parquet_files(str(data))
    setups = [ScanSetup.from_schema(section, open_for_scan(f, "parquet", f).schema, f, "parquet") for f in files]
    header = setups[0].header()
    if any(s.header() != header for s in setups[1:]):
        raise InputDataError(f"{data}: the Parquet files do not share one schema")
    expected = {f: pq.ParquetFile(f).metadata.num_rows for f in files}
    spark = spark or spark_session(master)
    from pyspark.sql import functions as F

    df = spark.read.parquet(*[os.path.abspath(f) for f in files])
    df = df.select(*[F.col(f"`{c}`") for c in setups[0].columns],
                   F.col("_metadata.file_path").alias(_FILE), F.col("_metadata.row_index").alias(_ROW))
    section_json = section.model_dump(mode="json")
    mapping = {_normalize(f): f for f in files}

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        return summarize_batches(section_json, header, mapping, batches)

    rows = df.mapInArrow(run, "summary string").collect()
    summaries = [load_summary("pii", json.loads(r["summary"])) for r in rows]
    if not summaries:
        summaries = [setups[0].summarize([], partition_id=files[0], uri=files[0], order=[files[0], -1])]
    merged = merge_all(summaries)
    for f in files:
        part = merged.coverage.parts.get(f)
        seen = int(part["rows"]) if part else 0
        if seen != expected[f]:
            raise InputDataError(f"{f}: Spark counted {seen} of {expected[f]} rows")
        if part is not None:
            part["sha256"] = sha256_file(f)
    return merged


def check_pii_spark(section: PiiPolicy, data: str, *, classification: str | Classification | None = None,
                    spark: Any = None, master: str | None = None) -> CheckOutcome:
    """``check_pii`` with the scan on Spark: same verdict, findings and counts as ``--engine local``."""
    from airflow_aisec.core.gates.pii.summary import check_summary

    return check_summary(section, pii_summary_spark(section, data, spark=spark, master=master),
                         classification=classification)


def pii_envelopes_spark(sections: Sequence[PiiPolicy], data: str, *, spark: Any = None) -> dict[str, Any]:
    """For ``@task.pyspark``: the summaries of ``data`` under each policy section, as a scan task's
    return value (feed it to ``GateMergeOperator(summaries=...)``)."""
    out: dict[str, Any] = {}
    from airflow_aisec.core.partitions import section_digest

    for section in sections:
        key = section_digest(section)
        if key not in out:
            out[key] = pii_summary_spark(section, data, spark=spark).signed_json()
    return {"gate": "pii", "partition": str(data), "summaries": list(out.values())}
