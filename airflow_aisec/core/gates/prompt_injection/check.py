"""Entry point of the prompt-injection corpus gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_aisec.core.gates.prompt_injection._detect import ENGINES, CellHits, Detector
from airflow_aisec.core.gates.prompt_injection._sources import Reader, TextBatch, manifest_digest
from airflow_aisec.core.gates.prompt_injection._tally import Tally
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError


def check_prompt_injection(
    section: PromptInjectionPolicy,
    data: str,
    *,
    columns: Sequence[str] | None = None,
    s3_client: Any = None,
    engine: str = "auto",
) -> CheckOutcome:
    """Scan training / RAG / prompt data for prompt-injection payloads.

    Args:
        section: The policy's ``prompt_injection`` section.
        data: A CSV / Parquet table, a JSONL file, a ``.txt`` / ``.md`` / ``.html`` document, or a
            directory (or ``s3://`` prefix) of documents; local path or ``s3://``.
        columns: Table columns to scan (default: ``section.columns``, else every text column).
        s3_client: boto3 S3 client for ``s3://`` data (default: from the AWS environment).
        engine: ``auto`` (RE2 pre-filter, then the rules on candidates) or ``re`` (the rules on
            every cell, Python only); both give the same findings.

    Returns:
        Findings per rule and column / field / documents whose hits exceed the policy's threshold;
        metrics with cells and bytes scanned and hit counts per rule. Never any text.

    Raises:
        InputDataError: unreadable or unsupported data, unknown columns, invalid JSON lines.
        AccessDeniedError / ServiceUnavailableError: S3 problems.
    """
    if not isinstance(section, PromptInjectionPolicy):
        raise ConfigurationError("check_prompt_injection needs the policy's 'prompt_injection' section")
    if engine not in ENGINES:
        raise ConfigurationError(f"unknown engine '{engine}'; expected one of {ENGINES}")
    detector = Detector(section)
    reader = Reader(section, columns=columns, s3_client=s3_client)
    tally = Tally(section)
    stats: dict[str, int] = {}
    nbytes = 0
    pending: list[TextBatch] = []
    cells = size = 0
    for batch in reader.batches(data):
        tally.add_units(batch.groups, batch.units)
        nbytes += batch.nbytes
        if not len(batch.strings):
            continue
        # Batches (a wide table's column blocks, small documents) are checked together: a pass over
        # strings costs its RE2 compilations and threads whatever their number.
        if pending and (cells + len(batch.strings) > PASS_CELLS or size + batch.nbytes > PASS_BYTES):
            _check_together(pending, detector, tally, engine, stats)
            pending, cells, size = [], 0, 0
        pending.append(batch)
        cells += len(batch.strings)
        size += batch.nbytes
    if pending:
        _check_together(pending, detector, tally, engine, stats)
    inputs = reader.inputs
    if inputs.directory:
        digest = manifest_digest(inputs.files) if inputs.files else None
    else:
        digest = inputs.files[0][1] if inputs.files else None
    scanned = sum(tally.units.values())
    metrics: dict[str, Any] = {
        "engine": "re" if engine == "re" else "re2",
        "cells_scanned": scanned,
        "bytes_scanned": nbytes,
        "candidates": stats.get("candidates", 0),
        "cells_with_hits": tally.cells_with_hits,
        "hits": tally.rule_counts(),
        "rules": list(section.enabled_rules()),
        "inputs": sorted(inputs.kinds),
    }
    if inputs.columns:
        metrics["columns"] = inputs.columns
    if "documents" in inputs.kinds or inputs.documents:
        metrics["documents"] = inputs.documents
    fields = sorted({g[1] for g in tally.units if g[0] == "field"})
    if fields:
        metrics["fields"] = fields[:100]
    if len(inputs.files) > 1:
        metrics["files"] = len(inputs.files)
    skipped: dict[str, Any] = {}
    if inputs.skipped_columns:
        skipped["columns"] = inputs.skipped_columns
    if inputs.skipped_fields:
        skipped["fields"] = sorted(inputs.skipped_fields)[:100]
    if inputs.skipped_documents:
        skipped["documents"] = len(inputs.skipped_documents)
    if inputs.skipped_other:
        skipped["other_files"] = inputs.skipped_other
    if skipped:
        metrics["skipped"] = skipped
    if tally.allowed:
        metrics["allowed_hits"] = dict(sorted(tally.allowed.items()))
    if inputs.unscanned:
        metrics["unscanned_files"] = len(inputs.unscanned)
    findings = [*tally.findings(), *map(_unscanned_finding, inputs.unscanned)]
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=str(data), sha256=digest)])


#: A scanned directory's entry that was not read but may be (symlinks are never followed here).
RULE_UNSCANNED = "prompt_injection.unscanned_file"
_UNSCANNED_WHY = {
    "special_file": "is a FIFO, socket or device",
    "symlink_outside": "is a symbolic link out of the scanned directory",
    "symlink_to_unscanned": "is a symbolic link to a file the gate does not scan",
}


def _unscanned_finding(entry: tuple[str, str]) -> Finding:
    rel, reason = entry
    return Finding(rule=RULE_UNSCANNED, severity=Severity.HIGH, count=1,
                   message=f"'{rel}' {_UNSCANNED_WHY[reason]}: not read, but what reads the directory may read it",
                   location={"file": rel, "reason": reason})


#: Strings and bytes checked in one pass at most (consecutive batches are joined up to these).
PASS_CELLS = 1 << 18
PASS_BYTES = 16 << 20


def _check_together(batches: list[TextBatch], detector: Detector, tally: Tally, engine: str,
                    stats: dict[str, int]) -> None:
    """Check the strings of ``batches`` in one pass and tally each hit in its batch, in order."""
    import bisect

    from airflow_aisec.core.io.column_blocks import end_to_end

    starts, offset = [], 0
    for b in batches:
        starts.append(offset)
        offset += len(b.strings)
    none: frozenset[int] = frozenset()
    parsed_of = [{i for i, segments in enumerate(b.hidden) if segments is not None} if b.hidden else none
                 for b in batches]
    html_done = {start + i for start, parsed in zip(starts, parsed_of) for i in parsed}
    strings = end_to_end([b.strings for b in batches])
    found_of: list[dict[int, CellHits]] = [{} for _ in batches]
    for i, hits in detector.detect_array(strings, engine=engine, html_done=html_done, stats=stats):
        k = bisect.bisect_right(starts, i) - 1
        found_of[k][i - starts[k]] = hits
    for batch, parsed, found in zip(batches, parsed_of, found_of):
        if parsed and "html_hidden_text" in detector.enabled:
            # Hidden HTML was judged while the document was parsed (the same for both engines).
            for i in sorted(parsed):
                segments = batch.hidden[i]  # type: ignore[index]
                if segments and detector.hidden_hit(segments):
                    prev = found.get(i)
                    found[i] = CellHits(frozenset({"html_hidden_text", *(prev.rules if prev else ())}),
                                        prev.encodings if prev else frozenset())
        for i in sorted(found):
            document = batch.documents[i] if batch.documents else None
            tally.add(*batch.origin(i), document, found[i])
