"""Redaction: write a copy of a table with its PII masked, dropped or replaced by a keyed hash.

The input is never modified: the copy goes to another path or object, and the
input's sha256 is checked again at the end. Which cells change: every match of
an entity that the output's classification (``pii.redaction.classification``,
else the policy default, normally ``public``) does not allow, in every column
that carries it, whatever ``min_share`` says. Methods:

* ``mask``: each match becomes ``mask_token`` (``<US_SSN>`` by default); the rest
  of a free-text cell stays readable;
* ``drop``: the whole cell becomes null;
* ``hash``: each match becomes ``<ENTITY>_<hex>``, a keyed HMAC-SHA256 of the
  normalised value (e-mail lower-cased, separators removed from numbers), so the
  same person gets the same token in every table redacted with the same key and
  joins still work. The key comes from Vault (KV) when configured: core takes an
  ``hvac`` client or a key provider callable; the operator uses Airflow's
  ``VaultHook``, the CLI ``VAULT_ADDR`` / ``VAULT_TOKEN``.

The output is written to a temporary file, re-scanned with the pii gate at the
target classification, and published (renamed into place or uploaded) only when
that re-scan has no finding. Residual PII gives ``pii.redaction_residual``
findings and nothing is published.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii._classify import ENTITY_SEVERITY, classify, is_classified
from airflow_aisec.core.gates.pii._detect import build_plan, detections_by_column
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._presidio import quiet_presidio
from airflow_aisec.core.gates.pii._rewrite import (
    Rewriter,
    TextShape,
    redact_column,
    redact_whole_column,
    residual_cells,
    shape_counts,
    token_regex,
)
from airflow_aisec.core.gates.pii._scan import scan_local
from airflow_aisec.core.gates.pii._table import iter_rows, open_for_scan
from airflow_aisec.core.gates.pii._text import build_text_scanner
from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.io.schema_lists import ColumnLists
    from airflow_aisec.core.io.vault import VaultClient
    from airflow_aisec.core.policy.sections.pii import (
        Classification,
        HashKeySettings,
        PiiPolicy,
        RedactionSettings,
    )

RULE_RESIDUAL = "pii.redaction_residual"
#: Share of non-empty cells holding an entity from which a (non free-text) column is redacted whole.
WHOLE_COLUMN_SHARE = 0.5
#: Shortest HMAC key accepted (bytes).
MIN_KEY_BYTES = 16

KeyProvider = Callable[[], "bytes | str"]


# -------------------------------------------------------------------------------------------------
# Keys
# -------------------------------------------------------------------------------------------------
def read_vault_key(vault: VaultClient, settings: HashKeySettings) -> str:
    """Read the HMAC key from Vault / OpenBao KV (v1 or v2) through the shared Vault client.

    Raises:
        AccessDeniedError: denied or no such secret.
        ServiceUnavailableError: Vault unreachable or sealed.
        ConfigurationError: the secret has no such field.
    """
    where = f"{settings.vault_mount}/{settings.vault_path}"
    data = vault.kv_read(settings.vault_mount, settings.vault_path, kv_version=settings.kv_version, what=where).data
    value = data.get(settings.vault_field)
    if not value or not isinstance(value, str):
        raise ConfigurationError(f"Vault secret {where} has no non-empty string field '{settings.vault_field}'")
    return value


def resolve_hmac_key(
    settings: RedactionSettings,
    *,
    vault: Any = None,
    key_provider: KeyProvider | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The HMAC key for ``hash`` redaction.

    Order: an explicit ``key_provider``; Vault (``key.vault_path``, needs ``vault``, an ``hvac.Client``);
    the environment variable ``key.env``.

    Raises:
        ConfigurationError: no key source, an empty or too short key.
    """
    key_settings = settings.key
    if key_provider is not None:
        raw: bytes | str = key_provider()
    elif key_settings is None:
        raise ConfigurationError("hash redaction needs pii.redaction.key (vault_path or env)")
    elif key_settings.vault_path:
        if vault is None:
            raise ConfigurationError("hash redaction reads its key from Vault, but no Vault client is configured")
        raw = read_vault_key(vault, key_settings)
    else:
        env = os.environ if environ is None else environ
        raw = env.get(key_settings.env or "", "")
        if not raw:
            raise ConfigurationError(f"environment variable {key_settings.env} holding the HMAC key is not set")
    key = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"the HMAC key is shorter than {MIN_KEY_BYTES} bytes")
    return key


# -------------------------------------------------------------------------------------------------
# Redaction
# -------------------------------------------------------------------------------------------------
def _same_target(src: str, dst: str) -> bool:
    if is_s3_uri(src) or is_s3_uri(dst):
        return src.rstrip("/") == dst.rstrip("/")
    a, b = Path(src), Path(dst)
    with contextlib.suppress(OSError):
        if b.exists() and a.exists() and os.path.samefile(a, b):
            return True
    return a.resolve() == b.resolve()


class _Writer:
    """Parquet or CSV writer; CSV is compressed when the output name ends in .gz / .bz2 / .zst."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self._stream = None
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(str(path), schema)
        else:
            self._stream = pa.output_stream(str(path), compression="detect")
            self._writer = pacsv.CSVWriter(self._stream, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write(batch)

    def close(self) -> None:
        self._writer.close()
        if self._stream is not None:
            self._stream.close()


def _output_schema(columns: ColumnLists, targets: Mapping[str, set[str]], method: str,
                   labels: Mapping[str, str]) -> pa.Schema:
    """Redacted columns become text (mask / hash); a column whose name holds PII is renamed ``column_<i>``."""
    import pyarrow as pa

    if columns.plain:
        # Fields made from the lists (a wide CSV file's), without making the input's schema first.
        names, types = list(columns.names), list(columns.types)
        for i in [i for i, name in enumerate(names) if name in targets or name in labels]:
            name = names[i]
            if name in targets and method != "drop":
                types[i] = pa.string()
            if name in labels:
                names[i] = f"column_{labels[name].lstrip('#')}"
        return pa.schema(list(zip(names, types)))
    schema = columns.schema
    fields = []
    for f in schema:
        if f.name not in targets and f.name not in labels:
            fields.append(f)  # unchanged (most columns of a wide table): no new field
            continue
        name = f"column_{labels[f.name].lstrip('#')}" if f.name in labels else f.name
        dtype = pa.string() if f.name in targets and method != "drop" else f.type
        fields.append(pa.field(name, dtype, nullable=True if f.name in targets else f.nullable, metadata=f.metadata))
    return pa.schema(fields, metadata=schema.metadata)


def _joined(batch: pa.RecordBatch, names: list[str], columns: list[str]) -> Iterator[tuple[list[str], pa.Array]]:
    """The text of batch ``columns`` (called ``names``) laid end to end, a pass's worth at a time
    (:data:`~._detect.MAX_CELLS_PER_PASS` cells), with the names of those in it."""
    from airflow_aisec.core.gates.pii._detect import MAX_CELLS_PER_PASS
    from airflow_aisec.core.gates.pii._table import joined_text

    per_pass = max(1, MAX_CELLS_PER_PASS // max(batch.num_rows, 1))
    for start in range(0, len(names), per_pass):
        chosen = columns[start:start + per_pass]
        yield names[start:start + per_pass], joined_text([batch.column(c) for c in chosen], chosen)


def _whole_columns(path: Path, fmt: str, uri: str, targets: Mapping[str, set[str]], batch_rows: int,
                   before: Any, detector: Detector) -> set[str]:
    """Classified columns whose values *are* the entity: not free text (:class:`~._rewrite.TextShape`), and
    the entity in at least :data:`WHOLE_COLUMN_SHARE` of the non-empty cells or named by the column
    (``phone``, ``ssn``...). A reference column with a few IBANs among invoice ids keeps its ids."""
    if not targets:
        return set()

    shapes = {name: TextShape() for name in targets}
    dataset = open_for_scan(path, fmt, uri)
    for batch, _rows in iter_rows(dataset, list(targets), batch_rows=batch_rows, uri=uri):
        for names, strings in _joined(batch, list(targets), list(targets)):
            for name, cells, words in zip(names, *shape_counts(strings, len(names))):
                shapes[name].cells += cells
                shapes[name].words += words
    out = set()
    for name, shape in shapes.items():
        if shape.free_text or not shape.cells:
            continue
        hits = max(before.columns[name].entities[e].count for e in targets[name])
        if hits >= WHOLE_COLUMN_SHARE * shape.cells or targets[name] & detector.hinted_entities(name):
            out.add(name)
    return out


def _against_classification(path: Path, fmt: str, uri: str, targets: Mapping[str, set[str]], whole: set[str],
                            out_schema: pa.Schema, input_names: list[str], rewriter: Rewriter, batch_rows: int,
                            labels: Mapping[str, str]) -> list[Finding]:
    """Findings for classified columns of the output that still hold an unredacted or partial value."""
    if not targets:
        return []

    # The output's column at each target's input position (renamed or not); a few targets: no 100k-entry dict.
    position = {name: i for i, name in enumerate(input_names)} if len(targets) > 16 else None
    out_name = {name: out_schema.field(position[name] if position else input_names.index(name)).name
                for name in targets}
    counts = dict.fromkeys(targets, 0)
    tokens = token_regex(rewriter, {e for ents in targets.values() for e in ents})
    dataset = open_for_scan(path, fmt, uri)
    for batch, _rows in iter_rows(dataset, [out_name[n] for n in targets], batch_rows=batch_rows, uri=uri):
        for kind in (True, False):  # whole columns, then free text: one pass each for many columns
            chosen = [n for n in targets if (n in whole) == kind]
            for names, strings in _joined(batch, chosen, [out_name[n] for n in chosen]):
                for name, count in zip(names, residual_cells(strings, whole_column=kind, method=rewriter.method,
                                                             tokens=tokens, columns=len(names))):
                    counts[name] += count
    findings = []
    for name, count in counts.items():
        if not count:
            continue
        ents = sorted(targets[name])
        kind = "unredacted" if name in whole else "partially redacted"
        findings.append(Finding(
            rule=RULE_RESIDUAL,
            severity=max((ENTITY_SEVERITY.get(e, Severity.HIGH) for e in ents), key=_SEVERITY_ORDER.index),
            message=(f"redacted output: column '{labels[name]}', classified {', '.join(ents)} before redaction, "
                     f"still holds {count} {kind} value(s)"),
            count=count,
            location={"uri": uri, "column": labels[name], "entities": ents,
                      "mode": "column" if name in whole else "span"},
        ))
    return findings


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def redact_table(
    section: PiiPolicy,
    src: str,
    dst: str,
    *,
    classification: str | Classification | None = None,
    vault: Any = None,
    key_provider: KeyProvider | None = None,
    s3_client: Any = None,
    src_format: str | None = None,
    dst_format: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CheckOutcome:
    """Write a redacted copy of ``src`` to ``dst``, re-scan it, and publish it only if it passes.

    Args:
        section: The policy's ``pii`` section (glue code passes ``loaded.section("pii")``).
        src: Input table (local path or ``s3://``); never modified.
        dst: Output table (local path or ``s3://``); must differ from ``src``.
        classification: Level the output must pass (default: ``redaction.classification``,
            else the policy's ``default_classification``).
        vault: ``hvac.Client`` for a Vault-held HMAC key.
        key_provider: Callable returning the HMAC key (takes precedence over the policy's source).
        s3_client: boto3 client for ``s3://`` input or output.
        src_format / dst_format: ``csv`` / ``parquet`` (default: from the extension).
        environ: Environment for ``key.env`` (default ``os.environ``).

    Returns:
        Findings of the output re-scan (``pii.redaction_residual``), redaction counts in metrics,
        the input and the output (with digests) in inputs.

    Raises:
        ConfigurationError: output equals input, bad key configuration.
        InputDataError: unreadable input (see :func:`airflow_aisec.core.gates.pii.scan_table`).
    """
    import pyarrow as pa

    from airflow_aisec.core.io.storage import make_s3_client, sha256_file, translate_s3_errors
    from airflow_aisec.core.io.tabular import detect_format, local_copy
    from airflow_aisec.core.outputs import deliver, earlier_output

    settings = section.redaction
    src, dst = str(src), str(dst)
    if not dst.strip():
        raise ConfigurationError("no output given for the redacted copy")
    if _same_target(src, dst):
        raise ConfigurationError("the redacted copy must not overwrite its input")
    target = section.resolve_classification(classification or settings.classification)
    out_fmt = detect_format(dst, dst_format)
    # Under a policy floor an earlier layer's copy is redacted further, so the one written obeys both.
    staged = earlier_output(dst)
    staged = staged if isinstance(staged, str) else None
    in_fmt = out_fmt if staged else detect_format(src, src_format)
    key = resolve_hmac_key(settings, vault=vault, key_provider=key_provider, environ=environ) \
        if settings.method == "hash" else None
    rewriter = Rewriter(settings, key)
    level = section.level_rule(target)
    started = time.perf_counter()
    if (is_s3_uri(src) or is_s3_uri(dst)) and s3_client is None:
        s3_client = make_s3_client()

    with local_copy(staged or src, s3_client=s3_client) as copy:
        with quiet_presidio():
            detector = Detector(section.entities, column_hints=section.column_hints,
                                phone_regions=section.phone_regions)
        before = scan_local(section, copy.path, src, in_fmt, full=True, detector=detector)
        input_digest = before.sha256
        # Columns where something was found (the rest share NOTHING_FOUND: a wide table's 100,000).
        targets = {name: {e for e in col.carried() if not level.allows(e)} for name, col in before.columns.items()
                   if col.entities}
        targets = {name: ents for name, ents in targets.items() if ents}
        # A column classified as an entity is redacted as a column (every non-empty cell), free text by span.
        classified = {name: {e for e in ents if is_classified(section, e, before.columns[name].entities[e].count,
                                                               before.rows_scanned)} for name, ents in targets.items()}
        whole = _whole_columns(copy.path, in_fmt, src, {n: e for n, e in classified.items() if e},
                               section.scan.batch_rows, before, detector)
        dominant = {name: max(classified[name], key=lambda e: (before.columns[name].entities[e].count, e))
                    for name in whole}

        out_dir = None if is_s3_uri(dst) else Path(dst).resolve().parent
        if out_dir is not None and not out_dir.is_dir():
            raise InputDataError(f"output directory does not exist: {out_dir}")
        suffix = "".join(Path(dst.split("/")[-1]).suffixes[-2:]) or f".{out_fmt}"
        fd, tmp_name = tempfile.mkstemp(prefix=".aisec-redact-", suffix=suffix, dir=out_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        published = handed_over = False
        try:
            counts: dict[str, dict[str, int]] = {}
            with quiet_presidio():
                dataset = open_for_scan(copy.path, in_fmt, src)
                out_schema = _output_schema(dataset.column_lists, targets, settings.method, before.labels)
                nlp = build_text_scanner(section)
                plans = {p.name: p for p in build_plan(detector, list(targets))}
                writer = _Writer(tmp, out_fmt, out_schema)
                try:
                    target_names = list(targets)
                    for batch, _rows in iter_rows(dataset, dataset.names, batch_rows=section.scan.batch_rows,
                                                  uri=src):
                        arrays = batch.columns
                        # Detected for all target columns in few passes, then rewritten column by column.
                        found = detections_by_column([(batch.column(n), plans[n]) for n in target_names],
                                                     detector, nlp)
                        position = {n: i for i, n in enumerate(batch.schema.names)} if target_names else {}
                        for name, detections in zip(target_names, found):
                            i = position[name]
                            if name in whole:
                                arrays[i], n = redact_whole_column(arrays[i], plans[name], targets[name],
                                                                   dominant[name], detector, rewriter, nlp, detections)
                            else:
                                arrays[i], n = redact_column(arrays[i], plans[name], targets[name], detector,
                                                             rewriter, nlp, detections)
                            slot = counts.setdefault(before.label(name), {"cells": 0})
                            slot["cells"] += n
                        writer.write(pa.RecordBatch.from_arrays(arrays, schema=out_schema))
                finally:
                    writer.close()

            after = scan_local(section, tmp, dst, out_fmt, full=True, detector=detector)
            residual = classify(section, after, target, rule=RULE_RESIDUAL, subject="redacted output: ")
            # The re-scan uses the detector that may have missed values: also hold the output against
            # the classification made before redaction.
            residual.findings.extend(_against_classification(
                tmp, out_fmt, dst, targets, whole, out_schema, dataset.names, rewriter, section.scan.batch_rows,
                {name: before.label(name) for name in targets}))
            output_digest = sha256_file(tmp)
            if not residual.findings:
                def publish() -> None:
                    if is_s3_uri(dst):
                        loc = parse_s3_uri(dst)
                        with translate_s3_errors(dst):
                            s3_client.upload_file(str(tmp), loc.bucket, loc.key)
                    else:
                        os.replace(tmp, dst)

                handed_over = not deliver(dst, str(tmp), publish)  # held back: the runner owns tmp now
                published = True
        finally:
            with contextlib.suppress(FileNotFoundError):
                if tmp.exists() and not handed_over:
                    tmp.unlink()
        if not is_s3_uri(src) and sha256_file(copy.path) != input_digest:
            raise InputDataError(f"{src}: the input changed while it was being redacted")

    for name, ents in targets.items():
        counts.setdefault(before.label(name), {"cells": 0})["entities"] = sorted(ents)  # type: ignore[assignment]
    metrics: dict[str, Any] = {
        "redaction": {
            "method": settings.method,
            "classification": target.value,
            "output": dst,
            "published": published,
            "columns": counts,
            "cells_redacted": sum(c["cells"] for c in counts.values()),
            "rows": before.rows_scanned,
            "duration_s": round(time.perf_counter() - started, 3),
        },
        "input_scan": {"pii_columns": {before.label(n): sorted(c.carried()) for n, c in before.columns.items()
                                       if c.carried()},
                       "redacted_as_column": sorted(before.label(n) for n in whole),
                       "columns_renamed": sorted(before.labels.values())},
        "output_scan": residual.metrics,
    }
    return CheckOutcome(
        findings=residual.findings,
        metrics=metrics,
        inputs=[InputRef(uri=src, sha256=input_digest), InputRef(uri=dst, sha256=output_digest)],
    )
