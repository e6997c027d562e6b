"""What the central audit trail confirms: its records indexed by Airflow task try, checked as read.

XComs can be written by anyone allowed to write XCom on a DAG (REST API, any task of the DAG);
the audit trail is append-only and hash-chained. So the UI plugin and ``aisec audit coverage``
trust a gate result only when the trail holds a record for that DAG, run, task, map index and
try whose payload is exactly the result (same sha256 of its canonical JSON):
:meth:`TrailIndex.confirm`.

Reading is incremental and cached: :func:`trail_index` keeps one index per location (at most
:data:`MAX_CACHED_TRAILS`), valid for the trail's HEAD and the bytes of the last record it
indexed. A request reads HEAD, that last record (a rewritten trail is rebuilt from scratch) and
any records after it: three small reads when nothing changed, never the whole trail again.
Records are checked as they are indexed, like ``aisec audit verify`` does (body digest, sequence
number, link to the previous record, HEAD); from the first bad record on nothing is indexed, and
:attr:`TrailIndex.broken` says where the chain broke.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.evidence import GENESIS, canonical_json, record_name
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.exceptions import EvidenceChainError

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceStore

#: Trails whose index is kept in memory (one per location; a process normally has one).
MAX_CACHED_TRAILS = 8
#: Verdicts under which a gate let its downstream tasks run.
PASSING_VERDICTS = ("pass", "warn")

TaskKey = tuple[str, str, str, int, "int | None"]


def payload_digest(payload: Any) -> str:
    """sha256 of a result document's canonical JSON: what ties an XCom result to its record.

    Raises:
        ValueError, TypeError: not JSON (e.g. NaN, a non-string key).
    """
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _map_index(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


@dataclass(frozen=True)
class TrailEntry:
    """One chain-verified record that names an Airflow task try (values: ids, digests, verdict)."""

    seq: int
    sha256: str
    kind: str
    payload_sha256: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None
    gate: str | None = None
    verdict: str | None = None

    @property
    def key(self) -> TaskKey:
        return (self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number)


@dataclass(frozen=True)
class Confirmation:
    """Whether the trail confirms one result; ``reason`` says why not (value-free)."""

    verified: bool
    reason: str = ""
    entry: TrailEntry | None = None


@dataclass
class TrailIndex:
    """Chain-verified records of one trail, by task try and by run.

    Attributes:
        location: The trail.
        last_seq: Sequence number of the last record indexed (0: none).
        last_sha: sha256 of that record's bytes.
        head: ``(seq, sha256)`` HEAD named when the index was last refreshed.
        broken: Why the chain (or HEAD) does not verify, naming the record; None when it does.
    """

    location: str
    last_seq: int = 0
    last_sha: str = GENESIS
    head: tuple[int, str] | None = None
    broken: str | None = None
    shas: list[str] = field(default_factory=list)
    by_task: dict[TaskKey, list[TrailEntry]] = field(default_factory=dict)
    by_run: dict[tuple[str, str], list[TrailEntry]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return self.last_seq

    def entries_for_run(self, dag_id: str, run_id: str) -> list[TrailEntry]:
        return list(self.by_run.get((dag_id, run_id), ()))

    def confirm(
        self,
        doc: Any,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        try_number: int | None = None,
    ) -> Confirmation:
        """Whether ``doc`` (a result as XCom holds it) is what this task try recorded in the trail.

        Args:
            doc: The result document (parsed JSON).
            dag_id, run_id, task_id, map_index: Where the XCom is stored (from the metadata DB,
                not from the document).
            try_number: The task instance's current try (None: unknown, the document's is used).
        """
        if not isinstance(doc, Mapping):
            return Confirmation(False, "the stored result is not a JSON object")
        air = doc.get("airflow")
        if not isinstance(air, Mapping) or (air.get("dag_id"), air.get("run_id"), air.get("task_id")) != (
            dag_id, run_id, task_id
        ) or _map_index(air.get("map_index")) != map_index:
            return Confirmation(False, "the result names another DAG, run or task than the one that holds it")
        claimed_try = air.get("try_number")
        if try_number is not None and claimed_try != try_number:
            return Confirmation(False, f"the result is from try {claimed_try}, the task is at try {try_number}")
        try:
            digest = payload_digest(dict(doc))
        except (TypeError, ValueError):
            return Confirmation(False, "the stored result is not canonical JSON")
        entries = self.by_task.get((dag_id, run_id, task_id, map_index, claimed_try), [])
        suffix = f" (the trail does not verify: {self.broken})" if self.broken else ""
        if not entries:
            return Confirmation(False, "no record of this task try in the audit trail" + suffix)
        for entry in reversed(entries):
            if entry.payload_sha256 == digest:
                return Confirmation(True, "", entry)
        return Confirmation(False, "the audit-trail record of this task try does not match this result "
                                   "(digest differs)" + suffix)

    # --- building ----------------------------------------------------------------------------
    def _add(self, seq: int, data: bytes) -> None:
        """Check one record against the chain and index it.

        Raises:
            EvidenceChainError: the record does not verify (naming it).
        """
        name = record_name(seq)
        try:
            record = loads_json(data)
            if not isinstance(record, dict):
                raise TypeError("not an object")
            claimed = record.pop("body_sha256", None)
            actual = hashlib.sha256(canonical_json(record)).hexdigest()
        except (ValueError, TypeError):
            raise EvidenceChainError("record is not valid canonical JSON (edited?)", record=name) from None
        if claimed != actual:
            raise EvidenceChainError("record content does not match its digest (edited?)", record=name)
        if record.get("seq") != seq:
            raise EvidenceChainError("record sequence number does not match its name (reordered?)", record=name)
        if record.get("prev_sha256") != self.last_sha:
            raise EvidenceChainError("prev_sha256 does not match the previous record", record=name)
        sha = hashlib.sha256(data).hexdigest()
        self.last_seq, self.last_sha = seq, sha
        self.shas.append(sha)
        payload = record.get("payload")
        air = payload.get("airflow") if isinstance(payload, dict) else None
        if not isinstance(air, dict):
            return
        ids = (air.get("dag_id"), air.get("run_id"), air.get("task_id"))
        if not all(isinstance(v, str) for v in ids):
            return
        try_number = air.get("try_number")
        entry = TrailEntry(
            seq=seq,
            sha256=sha,
            kind=str(record.get("kind")),
            payload_sha256=payload_digest(payload),
            dag_id=ids[0],
            run_id=ids[1],
            task_id=ids[2],
            map_index=_map_index(air.get("map_index")),
            try_number=try_number if isinstance(try_number, int) else None,
            gate=payload.get("gate") if isinstance(payload.get("gate"), str) else None,
            verdict=payload.get("verdict") if isinstance(payload.get("verdict"), str) else None,
        )
        self.by_task.setdefault(entry.key, []).append(entry)
        self.by_run.setdefault((entry.dag_id, entry.run_id), []).append(entry)

    def _extend(self, store: EvidenceStore) -> None:
        """Index every record after :attr:`last_seq`, stopping at the first missing or bad one."""
        seq = self.last_seq + 1
        while self.broken is None:
            data = store.read_record(record_name(seq))
            if data is None:
                return
            try:
                self._add(seq, data)
            except EvidenceChainError as exc:
                self.broken = str(exc)  # it names the record
                return
            seq += 1

    def _check_head(self, head: tuple[int, str] | None) -> None:
        self.head = head
        if self.broken is not None:
            return
        if head is None:
            if self.last_seq:
                self.broken = "HEAD: HEAD is missing"
            return
        seq, sha = head
        if seq > self.last_seq:
            self.broken = f"HEAD: names record {seq} but the chain ends at {self.last_seq} (records removed?)"
        elif self.shas[seq - 1] != sha:  # seq >= 1: parse_head
            self.broken = f"{record_name(seq)}: record does not match HEAD (edited?)"


def _still_valid(store: EvidenceStore, index: TrailIndex, head: tuple[int, str] | None) -> bool:
    """Whether a cached index still describes this trail (same records up to where it ends)."""
    if index.broken is not None:
        return index.head == head  # a broken trail is re-read once it changes
    if index.last_seq == 0:
        return True
    if head is not None and head[0] < index.last_seq:
        return False  # HEAD went backwards: rewritten
    data = store.read_record(record_name(index.last_seq))
    return data is not None and hashlib.sha256(data).hexdigest() == index.last_sha


def build_index(store: EvidenceStore, cached: TrailIndex | None = None) -> TrailIndex:
    """Index the trail at ``store``, continuing ``cached`` when it still describes it.

    Raises:
        ServiceUnavailableError: the store cannot be read.
    """
    try:
        head = store.read_head()
    except EvidenceChainError as exc:
        index = TrailIndex(location=store.location, broken=str(exc))
        index._extend(store)
        return index
    index = cached if cached is not None and _still_valid(store, cached, head) else None
    if index is None:
        index = TrailIndex(location=store.location)
    if index.broken is None:
        index._extend(store)
        index._check_head(head)
    return index


_lock = threading.Lock()
_cache: OrderedDict[str, TrailIndex] = OrderedDict()


def trail_index(store: EvidenceStore) -> TrailIndex:
    """The index of ``store``'s trail, refreshed incrementally from the per-location cache.

    Raises:
        ServiceUnavailableError: the store cannot be read.
    """
    with _lock:  # one refresh at a time: indexes are extended in place
        index = build_index(store, _cache.get(store.location))
        _cache[store.location] = index
        _cache.move_to_end(store.location)
        while len(_cache) > MAX_CACHED_TRAILS:
            _cache.popitem(last=False)
        return index


def clear_cache() -> None:
    """Forget every cached index (tests)."""
    with _lock:
        _cache.clear()
