"""The operations of a published OpenAPI document that declare security (and so must enforce it).

The document is the server's: it is read bounded, parsed as JSON, and trusted for nothing but the
list of paths to probe, which are checked like the policy's own (plain paths on the same host).
``servers`` entries are ignored: every probe goes to the endpoint the gate was given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.policy.sections.endpoint import split_probe
from airflow_aisec.exceptions import InputDataError

_PARAM_RE = re.compile(r"\{[^{}/]{1,200}\}")
_OPERATION_KEYS = ("get", "head", "post", "put", "patch", "delete", "options")


@dataclass(frozen=True)
class Operation:
    """One operation that declares security: method, path template and the concrete path probed."""

    method: str
    template: str
    path: str


def declares_security(operation: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether an operation requires credentials: its ``security`` (else the document's) is a non-empty
    list none of whose requirements is the empty object (which makes authentication optional)."""
    security = operation["security"] if "security" in operation else document.get("security")
    if not isinstance(security, list) or not security:
        return False
    return all(isinstance(req, dict) and req for req in security)


def parse_document(body: bytes, *, truncated: bool, limit: int) -> dict[str, Any]:
    """The OpenAPI document as a mapping with ``paths``.

    Raises:
        InputDataError: too large, not JSON, or without a ``paths`` mapping.
    """
    if truncated:
        raise InputDataError(f"the OpenAPI document is larger than {limit} bytes (policy openapi.max_document_bytes)")
    try:
        doc = loads_json(body.decode("utf-8"))
    except ValueError:
        raise InputDataError("the OpenAPI document is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise InputDataError("the OpenAPI document has no 'paths' mapping")
    return doc


def secured_operations(doc: dict[str, Any], *, methods: Sequence[str], parameter: str,
                       limit: int) -> tuple[list[Operation], int]:
    """Operations declaring security, with their path parameters filled in.

    Returns:
        The operations to probe (methods in ``methods``), and how many operations the document has.

    Raises:
        InputDataError: a path that is not a plain path on the endpoint's host, or more than ``limit``
            operations to probe.
    """
    wanted = {m.lower() for m in methods}
    out: list[Operation] = []
    total = 0
    for template in sorted(k for k in doc["paths"] if isinstance(k, str)):
        item = doc["paths"][template]
        if not isinstance(item, dict):
            continue
        for key in _OPERATION_KEYS:
            op = item.get(key)
            if not isinstance(op, dict):
                continue
            total += 1
            if key not in wanted or not declares_security(op, doc):
                continue
            path = _PARAM_RE.sub(parameter, template)
            try:
                split_probe(path)
            except ValueError:
                raise InputDataError(
                    f"the OpenAPI document lists a path that is not a plain path on the endpoint's host: "
                    f"{template[:80]!r}") from None
            out.append(Operation(key.upper(), template[:300], path))
            if len(out) > limit:
                raise InputDataError(
                    f"the OpenAPI document has more than {limit} operations declaring security "
                    "(policy openapi.max_operations): a partial check would not be a pass")
    return out, total
