"""Where a policy may come from: a local file or an ``s3://`` object, confined to the platform's
policy roots, optionally pinned by sha256.

* :func:`confine`: a policy location must resolve under one of the roots (local paths are resolved
  with ``realpath`` first, so ``..`` segments and symlinks cannot leave a root; an ``s3://`` key may
  hold no ``.``/``..``/empty segment). No roots: no restriction.
* :func:`load_policy_location`: read (bounded) and validate a policy from a file or ``s3://``;
  a local file is read at its resolved path, the one that was checked.
* :func:`load_pinned`: :func:`load_policy_location` plus a sha256 pin (the baseline's).

Errors are :class:`~airflow_aisec.exceptions.PolicyError` (verdict ``error``, exit 2), except an
unreachable S3 (retryable).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri, translate_s3_errors
from airflow_aisec.core.policy.document import LoadedPolicy
from airflow_aisec.core.policy.loader import MAX_POLICY_BYTES, load_policy, parse_policy
from airflow_aisec.exceptions import AccessDeniedError, InputDataError, PolicyError


def _s3_parts(uri: str) -> tuple[str, list[str]]:
    loc = parse_s3_uri(uri)
    return loc.bucket, [p for p in loc.key.split("/")]


def _s3_under(location: str, root: str) -> bool:
    bucket, parts = _s3_parts(location)
    root_bucket, root_parts = _s3_parts(root)
    root_parts = [p for p in root_parts if p]  # "s3://b/prefix/" and "s3://b/prefix" are the same root
    if bucket != root_bucket or any(p in ("", ".", "..") for p in parts):
        return False
    return len(parts) > len(root_parts) and parts[: len(root_parts)] == root_parts


def _local_under(real: str, root: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real, real_root]) == real_root and real != real_root


def confine(location: str, roots: Sequence[str], *, what: str = "policy") -> str:
    """Check that ``location`` resolves under one of ``roots``; return the location to read.

    Args:
        location: A policy file path (relative to the working directory) or ``s3://bucket/key``.
        roots: Directories or ``s3://`` prefixes; empty: anything goes.
        what: Named in the error.

    Returns:
        The resolved local path (symlinks and ``..`` resolved), or the ``s3://`` location.

    Raises:
        PolicyError: the location is outside every root.
    """
    location = str(location)
    if is_s3_uri(location):
        if roots and not any(is_s3_uri(r) and _s3_under(location, r) for r in roots):
            raise PolicyError(f"{what} is outside [aisec] policy_roots; refused", source=location)
        return location
    real = os.path.realpath(location)
    if roots and not any(not is_s3_uri(r) and _local_under(real, r) for r in roots):
        raise PolicyError(
            f"{what} resolves to {real}, outside [aisec] policy_roots ({', '.join(roots)}); refused",
            source=location,
        )
    return real if roots else location


def _read_s3(uri: str, s3_client: Any) -> bytes:
    if s3_client is None:
        from airflow_aisec.core.io.storage import make_s3_client

        s3_client = make_s3_client()
    loc = parse_s3_uri(uri)
    if not loc.key or loc.key.endswith("/"):
        raise PolicyError("an s3:// policy must name an object, not a prefix", source=uri)
    try:
        with translate_s3_errors(uri):
            obj = s3_client.get_object(Bucket=loc.bucket, Key=loc.key)
            if int(obj.get("ContentLength") or 0) > MAX_POLICY_BYTES:
                raise PolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes", source=uri)
            return obj["Body"].read(MAX_POLICY_BYTES + 1)
    except (InputDataError, AccessDeniedError) as exc:
        raise PolicyError(f"cannot read the policy: {exc}", source=uri) from None


def load_policy_location(
    location: str, *, roots: Sequence[str] = (), s3_client: Any = None, what: str = "policy"
) -> LoadedPolicy:
    """Load and validate a policy from a file or ``s3://``, after :func:`confine`.

    The result's ``source`` is the location as given (what results and the UI show).

    Raises:
        PolicyError: outside the roots, missing, unreadable, too large or invalid.
        ServiceUnavailableError: S3 unreachable (retryable).
    """
    if location is None or not str(location).strip():
        raise PolicyError("no policy given; gates refuse to run without a policy")
    location = str(location)
    target = confine(location, roots, what=what)
    if is_s3_uri(target):
        return parse_policy(_read_s3(target, s3_client), source=location)
    loaded = load_policy(target)
    if target != location:
        loaded = LoadedPolicy(policy=loaded.policy, sha256=loaded.sha256, source=location)
    return loaded


def load_pinned(location: str, *, sha256: str = "", s3_client: Any = None, what: str = "baseline policy") -> LoadedPolicy:
    """Load a policy and, when ``sha256`` is given, refuse one whose digest differs.

    Raises:
        PolicyError: unreadable, invalid, or not the pinned file.
    """
    loaded = load_policy_location(location, s3_client=s3_client, what=what)
    pin = (sha256 or "").strip().lower()
    if pin and loaded.sha256 != pin:
        raise PolicyError(
            f"{what} sha256 {loaded.sha256[:12]}... does not match the pinned {pin[:12]}... "
            "([aisec] baseline_policy_sha256): refused", source=location,
        )
    return loaded


__all__ = ["confine", "load_pinned", "load_policy_location"]
