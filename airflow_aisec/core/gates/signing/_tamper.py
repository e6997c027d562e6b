"""Running model-signing's verification, and naming what was tampered with when it fails.

The library re-hashes the model with a fresh configuration on exactly the bytes checked before
(private copies of the validated bundle and key). Only on failure is the model hashed again to
say what differs from the signed manifest: files changed, added, removed or renamed, or a
signature of a different model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing._bundle import SignedStatement
from airflow_aisec.core.gates.signing._errors import RULE_FAILED, listing, tampered
from airflow_aisec.core.gates.signing._hashing import build_hashing_config
from airflow_aisec.core.gates.signing._keys import public_key_pem
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.exceptions import ModelTamperedError, SignatureVerificationError


def group_by_file(items: dict[str, str], method: str) -> dict[str, tuple[str, ...]]:
    if method == "files":
        return {name: (digest,) for name, digest in items.items()}
    grouped: dict[str, list[tuple[int, str]]] = {}
    for name, digest in items.items():
        path, start, _end = name.rsplit(":", 2)
        grouped.setdefault(path, []).append((int(start), digest))
    return {path: tuple(d for _, d in sorted(shards)) for path, shards in grouped.items()}


def describe_tampering(
    model_dir: Path, statement: SignedStatement, policy: SigningPolicy, model_uri: str
) -> ModelTamperedError | None:
    """Re-hash the model and name what differs from the signed manifest (None if nothing does)."""
    config = build_hashing_config(policy)
    if statement.ignore_paths:
        config.add_ignored_paths(model_path=model_dir, paths=statement.ignore_paths)
    actual_manifest = config.hash(model_dir)
    actual = {rd.identifier: rd.digest.digest_hex for rd in actual_manifest.resource_descriptors()}
    expected_files = group_by_file(statement.items, statement.method)
    actual_files = group_by_file(actual, statement.method)

    changed = sorted(p for p in expected_files.keys() & actual_files.keys() if expected_files[p] != actual_files[p])
    removed = sorted(expected_files.keys() - actual_files.keys())
    added = sorted(actual_files.keys() - expected_files.keys())
    if policy.allow_unsigned_files:
        added = []
    renamed: list[tuple[str, str]] = []
    for old in list(removed):
        match = next((new for new in added if actual_files[new] == expected_files[old]), None)
        if match is not None:
            renamed.append((old, match))
            removed.remove(old)
            added.remove(match)
    if not (changed or removed or added or renamed):
        return None

    location: dict[str, Any] = {"model": model_uri}
    for key, values in (("changed", changed), ("added", added), ("removed", removed)):
        if values:
            location[key] = values[:50]
    if renamed:
        location["renamed"] = [{"from": a, "to": b} for a, b in renamed[:50]]

    unchanged = (expected_files.keys() & actual_files.keys()) - set(changed)
    if not unchanged and not renamed and len(changed) + len(removed) == len(expected_files):
        return tampered(
            f"the signature is for a different model: none of its {len(expected_files)} file(s) match this model "
            f"(signed model name {statement.model_name!r})",
            "different_model",
            **location,
        )
    parts = []
    if changed:
        parts.append(f"{len(changed)} file(s) changed [{listing(changed)}]")
    if added:
        parts.append(f"{len(added)} unsigned file(s) added [{listing(added)}]")
    if removed:
        parts.append(f"{len(removed)} signed file(s) missing [{listing(removed)}]")
    if renamed:
        parts.append(f"{len(renamed)} file(s) renamed [{listing([f'{a} -> {b}' for a, b in renamed])}]")
    kinds = [k for k, v in (("changed", changed), ("added", added), ("removed", removed), ("renamed", renamed)) if v]
    reason = f"file_{kinds[0]}" if len(kinds) == 1 else "files_modified"
    return tampered("model content does not match its signature: " + "; ".join(parts), reason, **location)


def library_verify(
    model_dir: Path,
    *,
    bundle_bytes: bytes,
    public_key: Any,
    policy: SigningPolicy,
    statement: SignedStatement,
    model_uri: str,
) -> None:
    """Run model-signing's verification with a fresh configuration on exactly the bytes checked above."""
    from cryptography.exceptions import InvalidSignature

    ms = compat.import_model_signing()
    with tempfile.TemporaryDirectory(prefix="aisec-verify-") as tmp:
        # The library re-reads both files: hand it private copies of what was validated, outside the model.
        sig_path = Path(tmp) / "model.sig"
        key_path = Path(tmp) / "key.pub"
        sig_path.write_bytes(bundle_bytes)
        key_path.write_bytes(public_key_pem(public_key))
        config = (
            ms.verifying.Config()
            .use_elliptic_key_verifier(public_key=key_path)
            .set_hashing_config(build_hashing_config(policy))
            .set_ignore_unsigned_files(policy.allow_unsigned_files)
        )
        try:
            config.verify(model_dir, sig_path)
        except (ValueError, KeyError, TypeError, FileNotFoundError, InvalidSignature) as exc:
            failure = type(exc).__name__
        else:
            return
    found = describe_tampering(model_dir, statement, policy, model_uri)
    if found is not None:
        raise found
    raise SignatureVerificationError(
        f"model-signing rejected the model ({failure}) although its content matches the signed manifest",
        rule=RULE_FAILED,
        location={"reason": "library_rejected", "model": model_uri},
    )
