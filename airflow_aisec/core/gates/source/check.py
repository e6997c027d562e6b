"""Entry points of the source gate: :func:`check_sources` (the check) and :func:`pin_sources`
(the manifest to record at approval time)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from typing import Any

from airflow_aisec.core.collector import collector_paused
from airflow_aisec.core.gates.source._context import Context, S3ClientProvider, denied_is_bad_input, utc
from airflow_aisec.core.gates.source._expectations import load_expectations
from airflow_aisec.core.gates.source._origin import Target, canonical_target, check_origins
from airflow_aisec.core.gates.source._pins import load_pins
from airflow_aisec.core.gates.source._scan import SelfReference, profile_reference, scan_input
from airflow_aisec.core.io.storage import sha256_file
from airflow_aisec.core.policy.sections.source import SourcePolicy
from airflow_aisec.core.result import CheckOutcome, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError


def check_sources(
    section: SourcePolicy,
    data: Sequence[str] | str,
    *,
    reference: str | None = None,
    base_dir: str | None = None,
    s3_client: Any | Callable[[], Any] | None = None,
    now: _dt.datetime | None = None,
) -> CheckOutcome:
    """Validate datasets against the policy's ``source`` section.

    Args:
        section: The policy's ``source`` section (``loaded.section("source")``).
        data: Dataset URIs (local paths or ``s3://``), CSV or Parquet.
        reference: Reference dataset for poisoning signals (overrides ``source.poisoning.reference``).
        base_dir: Directory that relative paths written in the section (reference, suite, manifest,
            local origin globs, manifest keys) are resolved against: the policy file's directory,
            ``policy_dir(loaded.source)``. ``None``: the working directory.
        s3_client: A boto3 S3 client, or a zero-argument callable returning one (created only when
            an ``s3://`` location is read). Default: from the standard AWS environment.
        now: Current time (for tests of freshness).

    Returns:
        Findings (violations), metrics per dataset, inputs with their sha256.

    Raises:
        InputDataError: origin not allowed, missing/unreadable/empty/wrong-format data, a column
            named in the policy absent, S3 object missing or denied.
        ConfigurationError: unusable suite, manifest or poisoning configuration.
        ServiceUnavailableError: S3 unreachable.
    """
    uris = [data] if isinstance(data, str) else list(data or [])
    uris = [u for u in (str(x).strip() for x in uris) if u]
    if not uris:
        raise InputDataError("no dataset given")
    s3 = S3ClientProvider(s3_client)
    now = utc(now) if now else _dt.datetime.now(_dt.UTC)

    targets = [canonical_target(u) for u in uris]
    reference_target = None
    poisoning = section.poisoning
    if poisoning is not None:
        if reference:
            reference_target = canonical_target(reference, role="reference")
        elif poisoning.reference:
            reference_target = canonical_target(poisoning.reference, base_dir=base_dir, role="reference")
        if poisoning.needs_reference() and reference_target is None:
            raise ConfigurationError(
                "source.poisoning: label_shift, volume and reference-based out_of_range need a reference dataset "
                "(source.poisoning.reference, the operator's reference= or --reference)"
            )
    # Origins first: nothing from an unapproved place is downloaded or parsed.
    check_origins([*targets, *([reference_target] if reference_target else [])], section, base_dir)

    inputs: list[InputRef] = []
    pins = load_pins(section, base_dir, s3, inputs)
    items = load_expectations(section, base_dir, s3, inputs)
    ctx = Context(section=section, base_dir=base_dir, s3=s3, now=now, pins=pins, expectation_items=items,
                  inputs=inputs)

    metrics: dict[str, Any] = {"batch_rows": section.batch_rows, "datasets": []}
    reference_profile = None
    self_reference = None
    if reference_target is not None:
        metrics["reference"] = {}
        if _same_local_file(reference_target, targets[0], section.format):
            self_reference = SelfReference(reference_target, metrics["reference"])
        else:
            with collector_paused():
                reference_profile = profile_reference(ctx, reference_target, metrics["reference"])
    with collector_paused():  # a wide table's per-column lists, dicts and bounds stay alive throughout
        for target in targets:
            if self_reference is not None and reference_profile is None:
                metrics["datasets"].append(scan_input(ctx, target, None, self_reference=self_reference))
                reference_profile = self_reference.profile
                continue
            metrics["datasets"].append(scan_input(ctx, target, reference_profile))
    metrics["rows"] = sum(m.get("rows", 0) for m in metrics["datasets"])
    return CheckOutcome(findings=ctx.findings, metrics=metrics, inputs=ctx.inputs)


def _same_local_file(reference: Target, target: Target, fmt: str | None) -> bool:
    """Whether the reference is the first dataset's very file (then both are read in one pass)."""
    from airflow_aisec.core.io.tabular import detect_format

    if "s3" in (reference.scheme, target.scheme):
        return False
    try:
        if detect_format(reference.uri, fmt) != detect_format(target.uri, fmt):
            return False
        a, b = os.stat(reference.read_uri), os.stat(target.read_uri)
    except (OSError, InputDataError):
        return False  # the ordinary path reports it
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def pin_sources(data: Sequence[str], *, s3_client: Any | Callable[[], Any] | None = None) -> dict[str, Any]:
    """The manifest to record at approval time: sha256 of each dataset and S3 VersionId / ETag.

    Returns:
        ``{"sha256": {uri: hex}, "s3_versions": {uri: {"version_id": ..., "etag": ...}}}``.
    """
    from airflow_aisec.core.io.tabular import local_copy

    s3 = S3ClientProvider(s3_client)
    manifest: dict[str, Any] = {"sha256": {}, "s3_versions": {}}
    for uri in data:
        target = canonical_target(uri)
        with denied_is_bad_input(), local_copy(target.read_uri, s3_client=s3.for_uri(target.uri)) as copy:
            manifest["sha256"][target.canonical] = sha256_file(copy.path)
            if target.scheme == "s3":
                pin = {k: v for k, v in (("version_id", copy.s3_version_id), ("etag", copy.s3_etag))
                       if v and v != "null"}
                if pin:
                    manifest["s3_versions"][target.canonical] = pin
    if not manifest["s3_versions"]:
        del manifest["s3_versions"]
    return manifest
