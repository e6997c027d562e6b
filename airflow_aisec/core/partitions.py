"""Gates over partitioned data: per-partition summaries that merge into one verdict.

A partition (a file under a directory or ``s3://`` prefix, or one Parquet row group) is scanned on
its own and yields a :class:`PartitionSummary`: counts, row positions and digests, never a value.
Summaries merge associatively and commutatively, so the partitions can be scanned anywhere (mapped
Airflow tasks, Spark executors) in any order; the policy is applied once, to the merged summary, by
the gate's ``check_summary``, and the verdict, findings and counts equal those of the single-node
check on the whole data.

Row positions. A summary keeps positions as ``(partition id, row within the partition)`` together
with each partition's order key and row count (:class:`Coverage`). When the policy is applied the
positions become global: the partition's offset in the data (rows of the partitions ordered
before it) plus the local row, which is what the single-node scan reports for one file split into
row groups, and for files laid end to end in sorted order.

Per gate (``core/gates/<gate>/summary.py``):

* ``summarize_partition(section, partition_uri, *, partition_id, s3_client=None, fmt=None, **inputs)``
* ``check_summary(section, summary, **inputs) -> CheckOutcome``

:data:`SUMMARIES` names each gate's summary class (imported lazily). Merging summaries of different
gates, or made under different policy sections, raises :class:`ConfigurationError`.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import importlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.base import GateSection

#: Gate name -> ``"module:Class"`` of its summary (lazy import).
SUMMARIES: dict[str, str] = {
    "pii": "airflow_aisec.core.gates.pii.summary:PiiSummary",
    "source": "airflow_aisec.core.gates.source.summary:SourceSummary",
    "bias": "airflow_aisec.core.gates.bias.summary:BiasSummary",
    "drift": "airflow_aisec.core.gates.drift.summary:DriftSummary",
}

#: Rule id of a summary whose digest does not match its content (XCom edited in transit).
RULE_TAMPERED = "partitions.summary_tampered"
#: Suffix naming one row group of a Parquet file in a partition URI.
_ROW_GROUP_RE = re.compile(r"^(?P<uri>.+)#row_group=(?P<rg>\d+)$")
_DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.zst")

S = TypeVar("S", bound="PartitionSummary")


def canonical_json(obj: Any) -> bytes:
    """The one serialization digests are taken over (sorted keys, no spaces, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def section_digest(section: GateSection | None) -> str:
    """Digest of a policy section: summaries made under different sections never merge."""
    if section is None:
        return ""
    return sha256_json(section.model_dump(mode="json"))


class PartitionSummary(abc.ABC):
    """What one partition (or several, once merged) contributes to a gate's verdict; value-free.

    Subclasses are dataclasses with at least ``gate`` and ``partition`` (an id; a merged summary's
    id names its partitions' digest). ``to_json`` must return plain JSON types; ``from_json``
    accepts what it returns (and verifies ``digest`` when present).
    """

    gate: str
    partition: str

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Plain JSON content (without ``digest``)."""

    @classmethod
    @abc.abstractmethod
    def from_json(cls: type[S], d: dict[str, Any]) -> S:
        """Inverse of :meth:`to_json`; use :func:`verified_content` to check an attached digest."""

    @abc.abstractmethod
    def merge(self: S, other: S) -> S:
        """A summary of both (associative, commutative); ConfigurationError across gates/policies."""

    def digest(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_json` (without any ``digest`` key)."""
        content = self.to_json()
        content.pop("digest", None)
        return sha256_json(content)

    def signed_json(self) -> dict[str, Any]:
        """:meth:`to_json` with its ``digest``: what travels through XCom or from Spark executors."""
        return {**self.to_json(), "digest": self.digest()}

    def require_same(self, other: PartitionSummary, **fields: tuple[Any, Any]) -> None:
        """Raise ConfigurationError unless ``other`` is the same gate and every field pair is equal."""
        if type(other) is not type(self) or other.gate != self.gate:
            raise ConfigurationError(f"cannot merge a {getattr(other, 'gate', '?')} summary into a {self.gate} "
                                     "summary")
        for name, (mine, theirs) in fields.items():
            if mine != theirs:
                raise ConfigurationError(f"cannot merge {self.gate} summaries with different {name} "
                                         f"(partitions {self.partition} and {other.partition})")


def verified_content(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without its ``digest``, after checking the digest matches (tampering is a violation)."""
    if not isinstance(d, dict):
        raise InputDataError("a partition summary is not a JSON object")
    content = {k: v for k, v in d.items() if k != "digest"}
    given = d.get("digest")
    if given is not None and given != sha256_json(content):
        raise SecurityViolationError(
            f"partition summary {str(content.get('partition'))[:200]} does not match its digest (changed in transit)",
            rule=RULE_TAMPERED, location={"partition": str(content.get("partition"))[:200]},
        )
    return content


def summary_class(gate: str) -> type[PartitionSummary]:
    """The summary class of ``gate`` (ConfigurationError for a gate without mapped mode)."""
    target = SUMMARIES.get(gate)
    if target is None:
        raise ConfigurationError(f"gate '{gate}' has no partition summaries; mapped mode covers {sorted(SUMMARIES)}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def gate_module(gate: str) -> Any:
    """``core/gates/<gate>/summary.py`` (its ``summarize_partition`` and ``check_summary``)."""
    summary_class(gate)
    return importlib.import_module(f"airflow_aisec.core.gates.{gate}.summary")


def load_summary(gate: str, d: dict[str, Any]) -> PartitionSummary:
    """A summary of ``gate`` from JSON, digest verified."""
    cls = summary_class(gate)
    summary = cls.from_json(d)
    if summary.gate != gate:
        raise ConfigurationError(f"a {summary.gate} summary was given to the {gate} gate")
    return summary


def merge_all(summaries: Iterable[S]) -> S:
    """Merge summaries (in any order: the result is the same)."""
    items = list(summaries)
    if not items:
        raise InputDataError("no partition summaries to merge (no partitions?)")
    merged = items[0]
    for other in items[1:]:
        merged = merged.merge(other)
    return merged


def merged_id(ids: Iterable[str]) -> str:
    """Id of a merged summary: one id stays itself, several get a digest of their sorted set."""
    unique = sorted(set(ids))
    if len(unique) == 1:
        return unique[0]
    return f"merged:{len(unique)}:{sha256_json(unique)[:16]}"


# --- coverage: which rows of which partitions a summary has seen --------------------------------------

@dataclass
class Coverage:
    """Rows seen per partition: ``{id: {"uri", "order", "rows", "ranges", "sha256"}}``.

    ``order`` sorts partitions as the single-node scan reads them (file URI, then row group);
    ``ranges`` are the half-open row ranges seen (a Spark batch sees a slice of a file). Merging
    refuses a row seen twice; :meth:`offsets` refuses a partition with rows never seen.
    """

    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def single(cls, partition_id: str, uri: str, order: Sequence[Any], rows: int, *, start: int = 0,
               sha256: str | None = None) -> Coverage:
        ranges = [[start, start + rows]] if rows else []
        return cls({partition_id: {"uri": uri, "order": list(order), "rows": rows, "ranges": ranges,
                                   "sha256": sha256}})

    def to_json(self) -> dict[str, Any]:
        return {k: dict(v, order=list(v["order"]), ranges=[list(r) for r in v["ranges"]])
                for k, v in sorted(self.parts.items())}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Coverage:
        return cls({str(k): dict(v) for k, v in d.items()})

    def merge(self, other: Coverage) -> Coverage:
        out = {k: dict(v) for k, v in self.parts.items()}
        for pid, theirs in other.parts.items():
            mine = out.get(pid)
            if mine is None:
                out[pid] = dict(theirs)
                continue
            if mine["uri"] != theirs["uri"] or list(mine["order"]) != list(theirs["order"]):
                raise InputDataError(f"partition {pid} is named for two different inputs")
            if mine.get("sha256") and theirs.get("sha256") and mine["sha256"] != theirs["sha256"]:
                raise InputDataError(f"partition {pid} changed between its scans (different sha256)")
            ranges = _union(mine["ranges"], theirs["ranges"], pid)
            out[pid] = {**mine, "rows": mine["rows"] + theirs["rows"], "ranges": ranges,
                        "sha256": mine.get("sha256") or theirs.get("sha256")}
        return Coverage(out)

    def ordered(self) -> list[str]:
        return sorted(self.parts, key=lambda p: (_order_key(self.parts[p]["order"]), p))

    def offsets(self) -> dict[str, int]:
        """Global row offset of each partition; InputDataError when a partition has unseen rows."""
        out: dict[str, int] = {}
        offset = 0
        for pid in self.ordered():
            part = self.parts[pid]
            rows = int(part["rows"])
            if rows and [list(r) for r in part["ranges"]] != [[0, rows]]:
                raise InputDataError(f"partition {pid}: some rows were not scanned (ranges {part['ranges'][:4]})")
            out[pid] = offset
            offset += rows
        return out

    @property
    def rows(self) -> int:
        return sum(int(p["rows"]) for p in self.parts.values())

    def files(self) -> list[tuple[str, str | None]]:
        """Distinct ``(uri, sha256)`` of the files read, in data order; InputDataError when the
        partitions of one file disagree on its sha256 (it changed between scans)."""
        seen: dict[str, str | None] = {}
        for pid in self.ordered():
            uri, digest = self.parts[pid]["uri"], self.parts[pid].get("sha256")
            if uri in seen and seen[uri] and digest and seen[uri] != digest:
                raise InputDataError(f"{uri} changed while its partitions were scanned (different sha256)")
            seen[uri] = seen.get(uri) or digest
        return list(seen.items())

    def root(self) -> str:
        """The data the partitions come from: the file, or the directory / prefix common to them."""
        uris = [u for u, _ in self.files()]
        if len(uris) == 1:
            return uris[0]
        prefix = os.path.commonprefix(uris)
        return prefix[: prefix.rfind("/") + 1] if "/" in prefix else prefix


def _order_key(order: Sequence[Any]) -> tuple[str, int]:
    uri, rg = (list(order) + ["", -1])[:2]
    return str(uri), int(rg)


def _union(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], pid: str) -> list[list[int]]:
    """Union of sorted half-open ranges; contiguous ranges coalesce; overlap is an error."""
    merged: list[list[int]] = []
    for lo, hi in sorted([list(r) for r in a] + [list(r) for r in b]):
        if merged and lo < merged[-1][1]:
            raise InputDataError(f"partition {pid}: rows {lo}-{min(hi, merged[-1][1]) - 1} were scanned twice")
        if merged and lo == merged[-1][1]:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    return merged


def merge_positions(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]], orders: dict[str, Any],
                    cap: int) -> list[list[Any]]:
    """The first ``cap`` ``[partition, row]`` positions of both lists, in data order."""
    both = {(str(p), int(r)) for p, r in [*a, *b]}
    ranked = sorted(both, key=lambda pr: (_order_key(orders[pr[0]]), pr[0], pr[1]))
    return [[p, r] for p, r in ranked[:cap]]


def global_positions(positions: Sequence[Sequence[Any]], offsets: dict[str, int]) -> list[int]:
    return sorted(offsets[str(p)] + int(r) for p, r in positions)


# --- partitions of a dataset -----------------------------------------------------------------------

def split_partition_uri(partition_uri: str) -> tuple[str, int | None]:
    """``(file uri, row group or None)`` of a partition URI (``file.parquet#row_group=N``)."""
    match = _ROW_GROUP_RE.match(str(partition_uri))
    if match:
        return match.group("uri"), int(match.group("rg"))
    return str(partition_uri), None


def partition_order(partition_uri: str) -> list[Any]:
    uri, rg = split_partition_uri(partition_uri)
    return [uri, -1 if rg is None else rg]


def _is_data_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and base.lower().endswith(_DATA_SUFFIXES)


def _list_files(uri: str, s3_client: Any) -> list[str]:
    from airflow_aisec.core.io.files import check_regular_file
    from airflow_aisec.core.io.storage import is_s3_uri, list_s3_prefix, make_s3_client, parse_s3_uri

    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        if loc.key and not loc.key.endswith("/") and _is_data_file(loc.key):
            return [uri]  # one object
        client = s3_client or make_s3_client()
        prefix = uri if uri.endswith("/") else uri + "/"
        objects = list_s3_prefix(prefix, client=client)
        return sorted(f"{prefix}{key}" for key in objects if _is_data_file(key))
    path = Path(uri)
    if not path.is_dir():
        check_regular_file(path, "data file")
        return [uri]
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        files.extend(os.path.join(root, n) for n in names if _is_data_file(n))
    return sorted(files)


def _row_groups(file_uri: str, s3_client: Any) -> int:
    """Number of row groups of a Parquet file (footer only for local files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.io.tabular import local_copy

    with local_copy(file_uri, s3_client=s3_client) as copy:
        try:
            return pq.ParquetFile(copy.path).metadata.num_row_groups
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputDataError(f"{file_uri}: not a readable Parquet file ({type(exc).__name__})") from None


def list_partitions(uri: str, *, s3_client: Any = None, by: str = "file") -> list[str]:
    """Partition URIs of ``uri`` in data order: its data files (a file, a directory, an ``s3://``
    prefix; hidden ``.``/``_`` names skipped), or with ``by="row_group"`` each Parquet row group
    (``file.parquet#row_group=N``; CSV files stay whole).

    Raises:
        InputDataError: nothing to scan, or an unreadable Parquet footer.
        ConfigurationError: unknown ``by``.
    """
    if by not in ("file", "row_group"):
        raise ConfigurationError(f"partitions by '{by}': expected 'file' or 'row_group'")
    files = _list_files(str(uri), s3_client)
    if not files:
        raise InputDataError(f"{uri}: no data files (.parquet / .csv) to scan")
    if by == "file":
        return files
    out: list[str] = []
    for f in files:
        if f.lower().endswith((".parquet", ".pq")):
            out.extend(f"{f}#row_group={i}" for i in range(_row_groups(f, s3_client)))
        else:
            out.append(f)
    return out


@contextlib.contextmanager
def partition_batches(partition_uri: str, columns: Sequence[str], *, s3_client: Any = None,
                      fmt: str | None = None, batch_rows: int | None = None
                      ) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch], str, str]]:
    """``(schema, batches of columns, file uri, file sha256)`` of a partition: a CSV / Parquet file or
    ``file.parquet#row_group=N``. Shared by the bias and drift summaries.

    Raises:
        InputDataError: a column is missing, the row group does not exist, unreadable data.
        ConfigurationError: a row group of a CSV file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import (
        DEFAULT_BATCH_ROWS,
        detect_format,
        iter_batches,
        local_copy,
        open_dataset,
    )

    uri, row_group = split_partition_uri(partition_uri)
    fmt = detect_format(uri, fmt)
    if row_group is not None and fmt != "parquet":
        raise ConfigurationError(f"{uri}: row-group partitions need Parquet, not {fmt}")
    with local_copy(uri, s3_client=s3_client) as copy:
        digest = sha256_file(copy.path)
        dataset = open_dataset(copy.path, fmt, uri=uri)
        present = set(dataset.names)  # once, not per column
        missing = [c for c in columns if c not in present]
        if missing:
            raise InputDataError(f"{uri}: column(s) not in the data: {', '.join(map(repr, missing))}")
        schema = pa.schema([dataset.schema.field(c) for c in columns])

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                if row_group is None:
                    yield from iter_batches(dataset, columns=list(columns), uri=uri)
                    return
                parquet = pq.ParquetFile(copy.path, pre_buffer=False)
                if row_group >= parquet.metadata.num_row_groups:
                    raise InputDataError(f"{uri}: no row group {row_group} "
                                         f"(the file has {parquet.metadata.num_row_groups})")
                yield from parquet.iter_batches(batch_size=batch_rows or DEFAULT_BATCH_ROWS, row_groups=[row_group],
                                                columns=list(columns))
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputDataError(f"{partition_uri}: table could not be read ({type(exc).__name__})") from None

        yield schema, batches(), uri, digest
