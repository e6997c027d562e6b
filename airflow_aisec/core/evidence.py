"""Append-only, hash-chained evidence store (the audit trail).

Every record is one canonical-JSON file or S3 object named by its sequence
number. It holds the sha256 of the previous record's bytes (``prev_sha256``) and
the sha256 of its own body (``body_sha256``), so editing, removing, reordering
or inserting any record breaks the chain at that record. A ``HEAD`` object names
the last record, so cutting records off the end is detected too.

Appends never overwrite: a local record is created with an atomic hard link
(fails if the name exists) under an exclusive lock, an S3 record with a
conditional ``PutObject`` (``If-None-Match: *``; an endpoint that ignores the
header is refused). Parallel writers that lose a race re-read the chain tip and
try the next number, so the chain stays linear.

Locations: a local directory path, or ``s3://bucket/prefix``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_aisec.core.io.files import read_user_file
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors
from airflow_aisec.core.result import utcnow
from airflow_aisec.exceptions import AisecError, ConfigurationError, EvidenceChainError, InputDataError

GENESIS = "0" * 64
RECORD_VERSION = 1
HEAD_NAME = "HEAD"
_RECORD_RE = re.compile(r"^(\d{12})\.json$")
MAX_APPEND_ATTEMPTS = 50
#: Largest record (or HEAD) read back: far above any gate result, small enough that a record replaced by
#: a symlink to ``/dev/zero`` cannot exhaust memory.
MAX_RECORD_BYTES = 64 * 1024 * 1024


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_head(data: bytes) -> tuple[int, str]:
    """``(seq, sha256)`` that a HEAD's bytes name: a record (a number from 1) and its digest.

    Every HEAD a writer makes names a record it has written. A HEAD naming none (seq 0 or below, an
    empty digest) would otherwise check nothing, and a trail cut to nothing would verify.

    Raises:
        EvidenceChainError: anything else.
    """
    try:
        doc = loads_json(data)
    except ValueError:
        doc = None
    seq = doc.get("seq") if isinstance(doc, dict) else None
    sha = doc.get("sha256") if isinstance(doc, dict) else None
    if type(seq) is not int or seq < 1 or not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
        raise EvidenceChainError("HEAD is not valid", record=HEAD_NAME)
    return seq, sha


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_name(seq: int) -> str:
    return f"{seq:012d}.json"


def build_record(seq: int, prev_sha256: str, kind: str, payload: dict[str, Any]) -> bytes:
    """Serialise one record: body plus its own digest, canonical JSON, newline-terminated."""
    body = {
        "record_version": RECORD_VERSION,
        "seq": seq,
        "prev_sha256": prev_sha256,
        "recorded_at": utcnow(),
        "kind": kind,
        "payload": payload,
    }
    body["body_sha256"] = _sha256(canonical_json(body))
    return canonical_json(body) + b"\n"


@dataclass(frozen=True)
class EvidenceRef:
    """Where a record landed: enough to find it and to anchor it elsewhere (e.g. in XCom)."""

    location: str
    seq: int
    name: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "seq": self.seq, "name": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class VerifyReport:
    location: str
    records: int
    head_sha256: str | None


class EvidenceStore(abc.ABC):
    """Common append/verify logic; subclasses provide raw storage."""

    def __init__(self, location: str):
        self.location = location

    # raw storage ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _list_names(self) -> list[str]:
        """Names of all objects under the location (records and others)."""

    @abc.abstractmethod
    def _read(self, name: str) -> bytes | None:
        """Bytes of one object, or None when absent."""

    @abc.abstractmethod
    def _create(self, name: str, data: bytes) -> bool:
        """Create ``name`` only if it does not exist. False when it already exists."""

    @abc.abstractmethod
    def _write_head(self, seq: int, sha256: str) -> None:
        """Advance HEAD to (seq, sha256) unless it already points further."""

    @contextlib.contextmanager
    def _append_lock(self) -> Iterator[None]:
        yield

    # chain logic ---------------------------------------------------------------------------
    def _record_names(self) -> list[tuple[int, str]]:
        out = []
        for name in self._list_names():
            m = _RECORD_RE.match(name)
            if m:
                out.append((int(m.group(1)), name))
            elif name != HEAD_NAME and not name.startswith("."):
                out.append((-1, name))  # a stray object in the trail is itself suspicious
        return sorted(out)

    def _tip(self) -> tuple[int, str]:
        names = [(seq, n) for seq, n in self._record_names() if seq >= 0]
        if not names:
            return 0, GENESIS
        seq, name = names[-1]
        data = self._read(name)
        if data is None:
            raise EvidenceChainError("record vanished while appending", record=name)
        return seq, _sha256(data)

    def append(self, payload: dict[str, Any], *, kind: str = "gate_result") -> EvidenceRef:
        """Append one record to the chain.

        Args:
            payload: JSON-serialisable, value-free content (e.g. a gate result).
            kind: Record kind (``gate_result``, ``security_event``, ``approval``...).

        Returns:
            Reference to the new record.

        Raises:
            ServiceUnavailableError: the store cannot be reached.
            EvidenceChainError: the chain could not be extended (contention).
        """
        canonical_json(payload)  # fail early (and before any write) on non-JSON payloads
        with self._append_lock():
            for _ in range(MAX_APPEND_ATTEMPTS):
                seq, prev = self._tip()
                data = build_record(seq + 1, prev, kind, payload)
                if len(data) > MAX_RECORD_BYTES:  # never write a record the trail's verifier would refuse to read
                    raise AisecError(f"record of {len(data)} bytes is larger than the trail's limit "
                                     f"({MAX_RECORD_BYTES} bytes); nothing was written")
                name = record_name(seq + 1)
                if self._create(name, data):
                    digest = _sha256(data)
                    self._write_head(seq + 1, digest)
                    return EvidenceRef(location=self.location, seq=seq + 1, name=name, sha256=digest)
        raise EvidenceChainError(f"could not append after {MAX_APPEND_ATTEMPTS} attempts (contention)")

    def read_record(self, name: str) -> bytes | None:
        """Raw bytes of one record (e.g. to check an XCom-anchored digest), or None when absent.

        ``name`` must be a record name (``000000000042.json``): anything else, e.g. a path taken from
        an XCom anchor, is never read.
        """
        if not isinstance(name, str) or not _RECORD_RE.match(name):
            return None
        return self._read(name)

    def read_head(self) -> tuple[int, str] | None:
        """``(seq, sha256)`` that ``HEAD`` names, None when there is no HEAD (an empty trail).

        Raises:
            EvidenceChainError: HEAD exists but is not valid.
        """
        head = self._read(HEAD_NAME)
        return None if head is None else parse_head(head)

    def read_records(self, *, require_location: bool = False) -> list[dict[str, Any]]:
        """All records, parsed, in order (does not verify; call :meth:`verify` for that).

        Args:
            require_location: Refuse a location that does not exist (``aisec audit show`` of a typo
                must not print an empty trail).

        Raises:
            InputDataError: ``require_location`` and the location does not exist.
            EvidenceChainError: a record is not a regular file (FIFO, device, symlink loop), too large, or
                not JSON.
        """
        if require_location and self._missing():
            raise InputDataError(f"no audit trail at {self.location}: the location does not exist")
        out = []
        for seq, name in self._record_names():
            if seq < 0:
                continue
            data = self._read(name)
            if data is None:
                continue
            try:
                out.append(loads_json(data))
            except ValueError:
                raise EvidenceChainError("record is not valid JSON (edited?)", record=name) from None
        return out

    def _missing(self) -> bool:
        """Whether the location itself does not exist (an S3 bucket that does not exist raises instead)."""
        return False

    def verify(self, *, require_records: bool = False) -> VerifyReport:
        """Check the whole chain.

        Args:
            require_records: Refuse a location that does not exist or holds no record at all (a typo
                or a deleted trail must not verify).

        Raises:
            EvidenceChainError: naming the first bad record (also a HEAD naming records that are gone).
            InputDataError: ``require_records`` and the location is missing or holds no records.
        """
        if require_records and self._missing():
            raise InputDataError(f"no audit trail at {self.location}: the location does not exist")
        names = self._record_names()
        prev = GENESIS
        expected = 1
        last_sha = None
        for seq, name in names:
            if seq < 0:
                raise EvidenceChainError("unexpected object in the audit trail (inserted?)", record=name)
            if seq != expected:
                missing = record_name(expected)
                raise EvidenceChainError(f"sequence gap: {missing} is missing (removed?)", record=name)
            data = self._read(name)
            if data is None:
                raise EvidenceChainError("record disappeared during verification", record=name)
            try:
                record = loads_json(data)
                if not isinstance(record, dict):
                    raise ValueError("not an object")  # noqa: TRY004 - caught right below
            except ValueError:
                raise EvidenceChainError("record is not valid JSON (edited?)", record=name) from None
            claimed = record.pop("body_sha256", None)
            try:
                actual = _sha256(canonical_json(record))
            except (TypeError, ValueError):
                raise EvidenceChainError("record is not canonical JSON (edited?)", record=name) from None
            if claimed != actual:
                raise EvidenceChainError("record content does not match its digest (edited?)", record=name)
            if record.get("seq") != seq:
                raise EvidenceChainError(
                    f"record says seq {record.get('seq')} but is stored as {seq} (reordered?)", record=name
                )
            if record.get("prev_sha256") != prev:
                raise EvidenceChainError(
                    "prev_sha256 does not match the previous record (edited, reordered or inserted?)",
                    record=name,
                )
            prev = last_sha = _sha256(data)
            expected += 1
        head = self.read_head()
        if head is not None:
            head_seq, head_sha = head
            if head_seq > expected - 1:
                raise EvidenceChainError(
                    f"HEAD names record {head_seq} but the chain ends at {expected - 1} (records removed?)",
                    record=record_name(expected),
                )
            data = self._read(record_name(head_seq))
            if data is None or _sha256(data) != head_sha:
                raise EvidenceChainError("record does not match HEAD (edited?)", record=record_name(head_seq))
        elif expected > 1:
            raise EvidenceChainError("HEAD is missing", record=HEAD_NAME)
        elif require_records:
            raise InputDataError(f"the audit trail at {self.location} holds no records")
        return VerifyReport(location=self.location, records=expected - 1, head_sha256=last_sha)


class LocalEvidenceStore(EvidenceStore):
    """Evidence in a local directory; one file per record."""

    def __init__(self, location: str | os.PathLike[str]):
        super().__init__(str(location))
        self.root = Path(location)

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create evidence directory {self.root}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _append_lock(self) -> Iterator[None]:
        self._ensure_root()
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _missing(self) -> bool:
        if os.path.lexists(self.root) and not self.root.exists():
            raise InputDataError(f"{self.root}: audit trail location is a dangling symlink or a symlink loop")
        return not self.root.exists()

    def _list_names(self) -> list[str]:
        if not self.root.exists():
            return []
        if not self.root.is_dir():
            raise ConfigurationError(f"evidence location is not a directory: {self.root}")
        return [p.name for p in self.root.iterdir() if p.is_file()]

    def _read(self, name: str) -> bytes | None:
        path = self.root / name
        # Absent means absent; a dangling or looping symlink, a FIFO, a device or a directory in its
        # place is a tampered trail, refused before any byte is read.
        if not os.path.lexists(path):
            return None
        return read_user_file(path, limit=MAX_RECORD_BYTES, what=f"audit record {name}",
                              error=EvidenceChainError)

    def _create(self, name: str, data: bytes) -> bool:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, self.root / name)  # atomic, fails if the record exists
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)

    def _write_head(self, seq: int, sha256: str) -> None:
        tmp = self.root / f".HEAD.{os.getpid()}"
        tmp.write_bytes(canonical_json({"seq": seq, "sha256": sha256}))
        os.replace(tmp, self.root / HEAD_NAME)


class S3EvidenceStore(EvidenceStore):
    """Evidence in ``s3://bucket/prefix``; one object per record, created with ``If-None-Match``."""

    def __init__(self, location: str, s3_client: Any = None):
        super().__init__(location)
        loc = parse_s3_uri(location)
        self.bucket = loc.bucket
        self.prefix = loc.key.rstrip("/") + "/" if loc.key.strip("/") else ""
        self.client = s3_client or make_s3_client()
        self._conditional_writes_checked = False

    def _list_names(self) -> list[str]:
        names: list[str] = []
        with translate_s3_errors(self.location):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(self.prefix):]
                    if rest and "/" not in rest:
                        names.append(rest)
        return names

    def _read(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with translate_s3_errors(f"{self.location.rstrip('/')}/{name}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def _put_if_absent(self, name: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        with translate_s3_errors(self.location):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + name,
                    Body=data,
                    IfNoneMatch="*",
                    ContentType="application/json",
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return False
                raise
        return True

    def _create(self, name: str, data: bytes) -> bool:
        if not self._put_if_absent(name, data):
            return False
        if not self._conditional_writes_checked:
            # Append-only rests on the server refusing If-None-Match on an existing key. Some
            # S3-compatible stores ignore the header: then racing writers overwrite each other's
            # records. Checked once per store by re-sending the same bytes (identical if accepted).
            if self._put_if_absent(name, data):
                raise ConfigurationError(
                    f"the S3 endpoint of {self.location} ignores If-None-Match (a conditional write "
                    "overwrote an existing record): the audit trail cannot be append-only there"
                )
            self._conditional_writes_checked = True
        return True

    def _write_head(self, seq: int, sha256: str) -> None:
        # HEAD only moves forward; a writer that lost a race to a later record leaves it alone.
        current = self._read(HEAD_NAME)
        if current is not None:
            with contextlib.suppress(EvidenceChainError):  # an invalid HEAD is replaced
                if parse_head(current)[0] >= seq:
                    return
        with translate_s3_errors(self.location):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + HEAD_NAME,
                Body=canonical_json({"seq": seq, "sha256": sha256}),
                ContentType="application/json",
            )


def open_evidence_store(location: str | os.PathLike[str], *, s3_client: Any = None) -> EvidenceStore:
    """Open the store at a local directory or ``s3://bucket/prefix``."""
    location = str(location)
    if not location.strip():
        raise ConfigurationError("empty evidence location")
    if is_s3_uri(location):
        return S3EvidenceStore(location, s3_client=s3_client)
    return LocalEvidenceStore(location)
