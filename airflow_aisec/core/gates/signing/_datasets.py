"""What the central audit trail says about a dataset: its latest source and PII gate records.

A dataset is named by the sha256 of its bytes, which is what the source and PII gates record in
their results' ``inputs``. A redaction (a PII record with ``metrics.redaction``) binds its output
to its input: a redacted copy inherits the source record of the extract it was made from, and
its own PII record is the redaction's (which re-scans the output).

Only chain-verified records count: the trail is indexed (and checked) by
:func:`~airflow_aisec.core.trail_index.trail_index`, and every record read here must have the
digest the index verified. A broken trail is an :class:`EvidenceChainError`, never "no record".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.evidence import record_name
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.trail_index import PASSING_VERDICTS, payload_digest, trail_index
from airflow_aisec.exceptions import EvidenceChainError

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceStore

#: The gates a training dataset must have passed.
DATASET_GATES = ("source", "pii")


@dataclass(frozen=True)
class RecordRef:
    """One trail record about a dataset (ids and digests only)."""

    gate: str
    seq: int
    sha256: str
    payload_sha256: str
    verdict: str
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING_VERDICTS

    def to_dict(self) -> dict[str, Any]:
        out = {"gate": self.gate, "record": record_name(self.seq), "seq": self.seq, "sha256": self.sha256,
               "payload_sha256": self.payload_sha256, "verdict": self.verdict}
        out.update({k: v for k, v in (("dag_id", self.dag_id), ("run_id", self.run_id),
                                      ("task_id", self.task_id)) if v})
        return out


@dataclass
class DatasetEvidence:
    """The latest source and PII records of one dataset digest, and why it is (not) vetted."""

    sha256: str
    records: dict[str, RecordRef] = field(default_factory=dict)
    derived_from: str | None = None

    @property
    def problems(self) -> list[str]:
        out = []
        for gate in DATASET_GATES:
            ref = self.records.get(gate)
            if ref is None:
                out.append(f"no {gate} gate record")
            elif not ref.passed:
                out.append(f"its latest {gate} gate record ({record_name(ref.seq)}) is '{ref.verdict}'")
        return out

    @property
    def vetted(self) -> bool:
        return not self.problems


@dataclass
class _Latest:
    by_gate: dict[tuple[str, str], RecordRef] = field(default_factory=dict)
    redacted_from: dict[str, str] = field(default_factory=dict)  # output digest -> input digest


def _scan(store: EvidenceStore) -> _Latest:
    index = trail_index(store)
    if index.broken:
        raise EvidenceChainError(f"the audit trail at {store.location} does not verify ({index.broken[:200]})")
    latest = _Latest()
    for seq in range(1, index.last_seq + 1):
        data = store.read_record(record_name(seq))
        if data is None or hashlib.sha256(data).hexdigest() != index.shas[seq - 1]:
            raise EvidenceChainError("record changed while it was read", record=record_name(seq))
        record = loads_json(data)
        payload = record.get("payload")
        if record.get("kind") != "gate_result" or not isinstance(payload, dict):
            continue
        gate = payload.get("gate")
        if gate not in DATASET_GATES:
            continue
        digests = [i.get("sha256") for i in payload.get("inputs") or [] if isinstance(i, dict)]
        digests = [d for d in digests if isinstance(d, str)]
        air = payload.get("airflow") if isinstance(payload.get("airflow"), dict) else {}
        ref = RecordRef(gate=gate, seq=seq, sha256=index.shas[seq - 1], payload_sha256=payload_digest(payload),
                        verdict=str(payload.get("verdict")), dag_id=air.get("dag_id"), run_id=air.get("run_id"),
                        task_id=air.get("task_id"))
        metrics = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else {}
        if gate == "pii" and isinstance(metrics.get("redaction"), dict) and len(digests) == 2:
            # inputs are [source, output]: the record is the output's PII record only.
            src, out = digests
            latest.by_gate[(out, gate)] = ref
            latest.redacted_from[out] = src
            continue
        for digest in digests:
            latest.by_gate[(digest, gate)] = ref
    return latest


def dataset_evidence(store: EvidenceStore, digests: list[str]) -> dict[str, DatasetEvidence]:
    """The latest source and PII records of each dataset digest in the trail at ``store``.

    Raises:
        EvidenceChainError: the trail does not verify.
        ServiceUnavailableError: the trail cannot be read.
    """
    latest = _scan(store)
    out: dict[str, DatasetEvidence] = {}
    for digest in digests:
        ev = DatasetEvidence(sha256=digest)
        for gate in DATASET_GATES:
            ref = latest.by_gate.get((digest, gate))
            if ref is not None:
                ev.records[gate] = ref
        parent = latest.redacted_from.get(digest)
        if parent is not None and "source" not in ev.records:
            ev.derived_from = parent
            ref = latest.by_gate.get((parent, "source"))
            if ref is not None:
                ev.records["source"] = ref
        out[digest] = ev
    return out
