"""Judging a bucket policy document: does it deny plain http to everyone, does it allow everyone.

Judged from the document (not by sending a plain-http request): a TLS-only statement is a ``Deny`` to
every principal of every S3 action (``s3:*`` or ``*``) on the bucket and on its objects, under
``Bool`` / ``BoolIfExists`` ``aws:SecureTransport = false`` (condition operators and keys compared
case-insensitively, as AWS does for keys). Statements that narrow it (``NotPrincipal``,
``NotResource``, ``NotAction``, other conditions alongside) do not count.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.exceptions import InputDataError


def parse_policy_document(text: str | bytes | None) -> dict[str, Any] | None:
    """The bucket policy as a mapping (None when there is none).

    Raises:
        InputDataError: not a JSON object with a ``Statement``.
    """
    if text is None or text == "" or text == b"":
        return None
    try:
        doc = loads_json(text)
    except ValueError:
        raise InputDataError("the bucket policy is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), (list, dict)):
        raise InputDataError("the bucket policy has no Statement")
    return doc


def statements(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    stmts = doc["Statement"]
    return [s for s in (stmts if isinstance(stmts, list) else [stmts]) if isinstance(s, dict)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def is_everyone(principal: Any) -> bool:
    """``"*"`` or ``{"AWS": "*"}`` (also inside a list)."""
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any(p == "*" for p in _as_list(principal.get("AWS")))
    return False


def _covers_all_actions(actions: Iterable[Any]) -> bool:
    return any(isinstance(a, str) and a.lower() in ("*", "s3:*") for a in actions)


def _covers(resources: Iterable[Any], arn_suffix: str) -> bool:
    """Whether a resource pattern matches ``arn:<any partition>:s3:::<arn_suffix>``."""
    for res in resources:
        if not isinstance(res, str):
            continue
        if res == "*":
            return True
        parts = res.split(":", 5)
        if len(parts) == 6 and parts[0] == "arn" and parts[2] == "s3" and fnmatch.fnmatchcase(arn_suffix, parts[5]):
            return True
    return False


def _denies_insecure_transport(condition: Any) -> bool:
    """The condition is exactly ``Bool``/``BoolIfExists`` ``aws:SecureTransport`` = false."""
    if not isinstance(condition, dict) or len(condition) != 1:
        return False
    (operator, block), = condition.items()
    if not isinstance(operator, str) or operator.lower() not in ("bool", "boolifexists") or not isinstance(block, dict):
        return False
    if len(block) != 1:
        return False
    (key, value), = block.items()
    values = _as_list(value)
    return (isinstance(key, str) and key.lower() == "aws:securetransport" and bool(values)
            and all(str(v).lower() == "false" for v in values))


def denies_insecure_transport(doc: dict[str, Any] | None, bucket: str) -> bool:
    """Whether the policy holds a statement denying every S3 action on the bucket and its objects to
    everyone over plain http."""
    for stmt in statements(doc):
        if str(stmt.get("Effect", "")) != "Deny":
            continue
        if "NotPrincipal" in stmt or "NotAction" in stmt or "NotResource" in stmt:
            continue
        if not is_everyone(stmt.get("Principal")) or not _covers_all_actions(_as_list(stmt.get("Action"))):
            continue
        resources = _as_list(stmt.get("Resource"))
        if not (_covers(resources, bucket) and _covers(resources, f"{bucket}/*")):
            continue
        if _denies_insecure_transport(stmt.get("Condition")):
            return True
    return False


def public_statements(doc: dict[str, Any] | None) -> list[int]:
    """Positions of ``Allow`` statements granting everyone access without any condition."""
    out = []
    for i, stmt in enumerate(statements(doc)):
        if str(stmt.get("Effect", "")) != "Allow" or stmt.get("Condition"):
            continue
        if is_everyone(stmt.get("Principal")) or "NotPrincipal" in stmt:
            out.append(i)
    return out
