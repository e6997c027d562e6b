"""Authenticating what the partition tasks hand each other through XCom (HMAC-SHA256).

A summary's sha256 ``digest`` catches a summary changed by accident; whoever can write XCom can
recompute it, put in a clean summary, or drop a partition from the list and its summary with it.
So the summaries and the partition list cross XCom with an HMAC-SHA256 under ``[aisec] handoff_key``,
the key only workers hold, parsed and rotated as for the secrets hand-off (the first key signs, any
configured key verifies, each MAC names its key by a short fingerprint):

* a summary (:func:`sign_summary` / :func:`verify_summary`) is bound to the DAG run, the gate, the
  policy section it was made under, its partition and its content (the recomputed digest): edited,
  moved to another partition or replayed from another run, it does not verify
  (``partitions.summary_tampered``);
* the partition list (:func:`sign_manifest` / :func:`verify_manifest`) is bound to the DAG run, the
  task that listed it and the data: a list missing, edited or taken from elsewhere is
  ``partitions.manifest_invalid``, so the merge knows every partition that had to be judged.

Only XCom needs this: the CLI and the Spark driver scan and merge in one process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from airflow_aisec.core.partitions import RULE_TAMPERED, canonical_json, sha256_json
from airflow_aisec.exceptions import ConfigurationError, SecurityViolationError

#: Rule id of a partition list (manifest) that is missing, altered or not this run's.
RULE_MANIFEST = "partitions.manifest_invalid"
MAC_VERSION = 1
#: Key of a summary's MAC inside its JSON (next to ``digest``).
MAC_FIELD = "mac"
MISSING_KEY = (
    "[aisec] handoff_key is not set: partition summaries and the partition list cross XCom authenticated "
    "with a key only workers hold; set it on the workers (aisec secrets handoff-key prints one)"
)


def partition_keys(raw: str | None) -> list[bytes]:
    """The configured ``[aisec] handoff_key`` keys, first one signing.

    Raises:
        ConfigurationError: unset, or a key that is not 32 bytes of URL-safe base64.
    """
    if not (raw or "").strip():
        raise ConfigurationError(MISSING_KEY)
    # The secrets gate's parser: one key format and one rotation scheme for every XCom hand-off.
    from airflow_aisec.core.gates.secrets._handoff import parse_handoff_keys

    return parse_handoff_keys(raw)


def _mac_key(key: bytes) -> bytes:
    # A key of its own for these MACs: the configured key also seals secrets with AES-GCM.
    return hmac.new(key, b"aisec-partitions-mac:v1", hashlib.sha256).digest()


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"aisec-partitions-key:" + key).hexdigest()[:16]


def _mac(key: bytes, message: dict[str, Any]) -> str:
    body = hmac.new(_mac_key(key), canonical_json({"v": MAC_VERSION, **message}), hashlib.sha256).hexdigest()
    return f"{_fingerprint(key)}:{body}"


def _verifies(given: Any, keys: Sequence[bytes], message: dict[str, Any]) -> bool:
    if not isinstance(given, str):
        return False
    fingerprint = given.partition(":")[0]
    key = next((k for k in keys if _fingerprint(k) == fingerprint), None)
    if key is None:
        # Unlike the secrets hand-off, not a configuration error: a forger writes unknown fingerprints too.
        return False
    return hmac.compare_digest(given, _mac(key, message))


def _summary_message(content: dict[str, Any], *, dag_id: str, run_id: str) -> dict[str, Any]:
    return {"kind": "summary", "dag_id": str(dag_id), "run_id": str(run_id), "gate": content.get("gate"),
            "policy": content.get("policy"), "partition": content.get("partition"),
            "digest": sha256_json(content)}


def _content(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("digest", MAC_FIELD)}


def sign_summary(signed_json: dict[str, Any], keys: Sequence[bytes], *, dag_id: str, run_id: str) -> dict[str, Any]:
    """A summary's ``signed_json()`` with its MAC for this DAG run (what a scan task returns)."""
    content = _content(signed_json)
    return {**signed_json, MAC_FIELD: _mac(keys[0], _summary_message(content, dag_id=dag_id, run_id=run_id))}


def verify_summary(d: Any, keys: Sequence[bytes], *, dag_id: str, run_id: str) -> dict[str, Any]:
    """``d`` without its MAC (``digest`` kept, for :func:`~airflow_aisec.core.partitions.load_summary`).

    Raises:
        SecurityViolationError: no MAC, or one that does not verify for this DAG run and content
            (``partitions.summary_tampered``).
    """
    content = _content(d) if isinstance(d, dict) else {}
    partition = str(content.get("partition"))[:200]
    if not isinstance(d, dict) or not _verifies(d.get(MAC_FIELD), keys,
                                                _summary_message(content, dag_id=dag_id, run_id=run_id)):
        raise SecurityViolationError(
            f"partition summary {partition} is not authenticated for this DAG run (altered in XCom, forged, "
            "copied from another run, or signed with a handoff_key this worker does not hold)",
            rule=RULE_TAMPERED, location={"partition": partition},
        )
    return {k: v for k, v in d.items() if k != MAC_FIELD}


def _manifest_message(partitions: Sequence[str], *, dag_id: str, run_id: str, task_id: str,
                      data: str, by: str) -> dict[str, Any]:
    return {"kind": "manifest", "dag_id": str(dag_id), "run_id": str(run_id), "task_id": str(task_id),
            "data": str(data), "by": str(by), "partitions": [str(p) for p in partitions]}


def sign_manifest(partitions: Sequence[str], keys: Sequence[bytes], *, dag_id: str, run_id: str, task_id: str,
                  data: str, by: str) -> dict[str, Any]:
    """The signed partition list a listing task pushes to XCom (value-free: URIs and counts)."""
    message = _manifest_message(partitions, dag_id=dag_id, run_id=run_id, task_id=task_id, data=data, by=by)
    return {"data": message["data"], "by": message["by"], "partitions": message["partitions"],
            MAC_FIELD: _mac(keys[0], message)}


def verify_manifest(manifest: Any, keys: Sequence[bytes], *, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The partitions of a manifest pushed by task ``task_id`` of this DAG run.

    Raises:
        SecurityViolationError: missing, malformed, or not verifying (``partitions.manifest_invalid``).
    """
    ok = isinstance(manifest, dict) and isinstance(manifest.get("partitions"), list) \
        and all(isinstance(p, str) for p in manifest["partitions"])
    if ok:
        message = _manifest_message(manifest["partitions"], dag_id=dag_id, run_id=run_id, task_id=task_id,
                                    data=str(manifest.get("data")), by=str(manifest.get("by")))
        ok = _verifies(manifest.get(MAC_FIELD), keys, message)
    if not ok:
        raise SecurityViolationError(
            f"the partition list of task '{task_id}' is missing or not authenticated for this DAG run "
            "(altered in XCom, copied from another run, or signed with a handoff_key this worker does not "
            "hold): the merge cannot tell which partitions to judge",
            rule=RULE_MANIFEST, location={"task_id": str(task_id)},
        )
    partitions = list(manifest["partitions"])
    if len(partitions) != len(set(partitions)):
        raise SecurityViolationError(f"the partition list of task '{task_id}' names a partition twice",
                                     rule=RULE_MANIFEST, location={"task_id": str(task_id)})
    return partitions
