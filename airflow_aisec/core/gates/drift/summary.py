"""The drift gate over partitioned data: the reference summarized once, the current data per partition.

The reference is summarized once (:func:`summarize_reference`, a :class:`DriftReference`): one
streamed pass over the whole reference table, plus the passes that place the exact quantile edges,
exactly as the single-node check reads it. Per numeric feature it holds the reference value sketch,
the quantile edges and the reference bin counts; per categorical feature the reference category
counts, each category named by a salted digest (never the name). Each current partition needs the
edges and the reference categories, so ``summarize_partition`` takes the reference either as that
summary (its JSON, e.g. from an upstream task) or as the reference URI, which each partition then
summarizes itself (simple, at the cost of one reference pass per partition). A partition summary
names its reference summary by digest, and only summaries of the same reference merge.

A :class:`DriftSummary` holds, per feature, the current rows and missing values, and for a numeric
feature the current value sketch and bin counts, for a categorical one the counts per reference
category and per unseen category (salted digest). Counts add; sketches merge into the sketch whose
shift is the smallest (at least both shifts) with at most ``sketch_bins`` bins, a function of the
values alone, so merging is associative and commutative.

What a summary holds: counts, salted category digests (a reader who guesses a value and has the
reference's sha256 can confirm it, as with any unkeyed digest), and numeric sketches, whose bin
bounds are data values (as in the single-node check's memory), not linked to rows or other columns.
Category names never enter a summary: in a report they appear only when the merge node summarized
the reference itself (``reference`` given as a URI), under the single-node rules.

:func:`check_summary` rebuilds the per-feature accumulators and applies the single-node evaluation:
verdict, findings and metrics equal :func:`~.check.check_drift` on the concatenated current data
(counts and PSI exactly; KS exact, scipy's, while both sketches are exact, that is while the whole
current data has at most ``sketch_bins`` distinct values per feature; beyond, within
``ks_error_bound``, and a threshold inside ``[ks_statistic, ks_statistic_upper]`` fails closed).

Small tables (at most 256 rows, :func:`._block.small_table`) take the single-node check's matrix
path at every step (:mod:`._summary_block`): the states of all numeric features are made at once,
equal to the per-feature ones byte for byte, and the merge node rebuilds both tables' value matrices
from their exact sketches and compares them as the single-node check does, with the same numbers. A
wide table (100,000 columns x 5 rows) then costs seconds (7.5 s CPU for all steps), not a minute (46 s).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.schema_lists import schema_lists, type_names
from airflow_aisec.core.partitions import (
    Coverage,
    PartitionSummary,
    merged_id,
    partition_order,
    section_digest,
    sha256_json,
    verified_content,
)
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np

    from airflow_aisec.core.gates.drift._features import CategoricalFeature, NumericFeature
    from airflow_aisec.core.policy.sections.drift import DriftPolicy
    from airflow_aisec.core.result import CheckOutcome

GATE = "drift"
_MAX_REFERENCE_PASSES = 70


def _salt(sha256: str | None, policy: str) -> str:
    return hashlib.sha256(f"aisec-drift-categories\0{sha256}\0{policy}".encode()).hexdigest()


def category_key(salt: str, name: str) -> str:
    """How a category is named in a summary: a salted digest of its canonical text."""
    return hashlib.sha256(f"{salt}\0{name}".encode()).hexdigest()[:32]


def _floats(values: Any) -> str:
    import base64

    import numpy as np

    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode()


def _unfloats(text: str) -> np.ndarray:
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(str(text), validate=True), dtype="<f8").astype(np.float64)


# --- the reference, summarized once -----------------------------------------------------------------

@dataclass
class DriftReference:
    """The reference's per-feature state (see module docs); ``labels``: report names, never serialized."""

    policy: str
    uri: str
    sha256: str | None
    rows: int
    features: list[str]
    types: dict[str, str]
    kinds: dict[str, str]
    state: dict[str, dict[str, Any]]
    labels: dict[str, dict[int, str]] = field(default_factory=dict, compare=False)
    #: The digest, once taken: a reference is not changed after it is made (a wide table's JSON takes ~1 s).
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"gate": GATE, "kind": "reference", "policy": self.policy, "uri": self.uri, "sha256": self.sha256,
                "rows": self.rows, "features": self.features, "types": self.types, "kinds": self.kinds,
                "state": self.state}

    def digest(self) -> str:
        if self._digest is None:
            self._digest = sha256_json(self.to_json())
        return self._digest

    def signed_json(self) -> dict[str, Any]:
        return {**self.to_json(), "digest": self.digest()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DriftReference:
        c = verified_content(d)
        try:
            if c.get("kind") != "reference" or c.get("gate") != GATE:
                raise ValueError("not a drift reference summary")
            out = cls(policy=str(c["policy"]), uri=str(c["uri"]), sha256=c["sha256"], rows=int(c["rows"]),
                      features=[str(f) for f in c["features"]], types=dict(c["types"]), kinds=dict(c["kinds"]),
                      state={str(k): dict(v) for k, v in c["state"].items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputDataError(f"a drift reference summary is malformed ({type(exc).__name__}: {exc})"[:200]) \
                from None
        return out

    @property
    def salt(self) -> str:
        return _salt(self.sha256, self.policy)


def summarize_reference(section: DriftPolicy, reference: str, *, features: Sequence[str] | str | None = None,
                        s3_client: Any = None, fmt: str | None = None) -> DriftReference:
    """Stream the whole reference table (and again, only if needed, to place exact quantile edges).

    Raises:
        InputDataError: empty table, missing column, unsupported type, no values, too many categories.
        ConfigurationError: feature selection problems.
    """
    from airflow_aisec.core.gates.drift._block import NumericBlock
    from airflow_aisec.core.gates.drift._categories import CategoricalBlock
    from airflow_aisec.core.gates.drift._columns import wide_csv_batches
    from airflow_aisec.core.gates.drift._evaluate import TableSource, _stream, feature_kinds, resolve_features
    from airflow_aisec.core.gates.drift._summary_block import reference_states
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import (
        DEFAULT_BATCH_ROWS,
        detect_format,
        iter_batches,
        local_copy,
        open_dataset,
    )

    uri = str(reference)
    with local_copy(uri, s3_client=s3_client) as copy:
        digest = sha256_file(copy.path)
        ds = open_dataset(copy.path, detect_format(uri, fmt), uri=uri)
        names = ds.names
        chosen = resolve_features(section, names, features)
        present = set(names)  # once, not per feature
        missing = [c for c in chosen if c not in present]
        if missing:
            raise InputDataError(f"column(s) not in the reference table: {', '.join(map(repr, missing))}")

        def batches(columns: list[str]) -> Iterator[Any]:
            yield from iter_batches(ds, columns=columns, uri=uri)

        def blocks(columns: list[str]) -> Iterator[Any] | None:
            return wide_csv_batches(ds, columns, DEFAULT_BATCH_ROWS, uri)

        source = TableSource(column_lists=ds.column_lists, batches=batches, name=uri, blocks=blocks)
        forced = set(section.categorical)
        at = {n: i for i, n in enumerate(names)}
        all_types = ds.types
        chosen_types = [all_types[at[n]] for n in chosen]
        kinds = dict(zip(chosen, feature_kinds(chosen_types, [n in forced for n in chosen])))
        for name, dtype in zip(chosen, chosen_types):
            if kinds[name] is None:
                raise InputDataError(f"feature '{name}' has an unsupported type ({dtype}); exclude it")
        types = dict(zip(chosen, type_names(chosen_types)))
        # The numeric features as one block (a small table: one matrix), the categorical ones each alone.
        numeric = [n for n in chosen if kinds[n] == "numeric"]
        categorical = [n for n in chosen if kinds[n] == "categorical"]
        block = NumericBlock(numeric, section) if numeric else None
        categories = CategoricalBlock(categorical, section) if categorical else None
        units: list[tuple[Any, list[str]]] = [(b, b.names) for b in (block, categories) if b is not None]
        rows = _stream(source, units, "add_reference")
        if rows == 0:
            raise InputDataError(f"the reference table is empty: {uri}")
        for acc, _ in units:
            acc.end_reference()
        for _ in range(_MAX_REFERENCE_PASSES):
            pending = [(acc, acc.pending_names()) for acc, _ in units if acc.pending]
            if not pending:
                break
            _stream(source, pending, "rescan")
            for acc, _ in pending:
                acc.end_rescan()
    policy = section_digest(section)
    salt = _salt(digest, policy)
    state: dict[str, dict[str, Any]] = {}
    if block is not None:
        matrix = block.reference_matrix()
        if matrix is not None:
            state.update(zip(numeric, reference_states(matrix, section)))
        else:
            assert block.features is not None
            for acc in block.features:
                state[acc.name] = {"rows": acc.ref_rows, "missing": acc.ref_missing, "sketch": acc.ref.to_json(),
                                   "edges": _floats(acc.edges), "bins": [int(x) for x in acc.ref_bins]}
    labels: dict[str, dict[int, str]] = {}
    if categories is not None:
        key_of: dict[str, str] = {}  # a name's key depends on the name only: made once, not per feature
        for name, (names_, counts) in zip(categorical, categories.categories()):
            keys = [key_of.get(n) or key_of.setdefault(n, category_key(salt, n)) for n in names_]
            state[name] = {"rows": rows, "missing": rows - sum(counts), "counts": counts, "keys": keys}
            if section.report_category_labels:
                labels[name] = {i: n for i, n in enumerate(names_) if counts[i] >= section.category_label_min_count}
    state = {name: state[name] for name in chosen}  # in feature order, as before
    return DriftReference(policy=policy, uri=uri, sha256=digest, rows=rows, features=chosen, types=types,
                          kinds=kinds, state=state, labels=labels)


def _reference(section: DriftPolicy, reference: Any, features: Any, s3_client: Any) -> DriftReference:
    if isinstance(reference, DriftReference):
        ref = reference
    elif isinstance(reference, dict):
        ref = DriftReference.from_json(reference)
    elif isinstance(reference, str) and reference:
        return summarize_reference(section, reference, features=features, s3_client=s3_client)
    else:
        raise ConfigurationError("drift over partitions needs the reference: a URI or a reference summary")
    if ref.policy != section_digest(section):
        raise ConfigurationError("the drift reference summary was made under a different drift policy section")
    return ref


# --- current partitions -----------------------------------------------------------------------------

def _numeric(name: str, section: DriftPolicy, ref: DriftReference, *, sketch: bool = True) -> NumericFeature:
    """A numeric feature's accumulator with the reference state; ``sketch``: with the reference's value
    sketch (KS needs it; a partition only bins its values on the reference edges)."""
    import numpy as np

    from airflow_aisec.core.gates.drift._features import NumericFeature
    from airflow_aisec.core.stats import ValueSketch

    r = ref.state[name]
    f = NumericFeature(name, section)
    if sketch:
        f.ref = ValueSketch.from_json(r["sketch"])
    f.ref_rows, f.ref_missing = int(r["rows"]), int(r["missing"])
    f.edges = _unfloats(r["edges"])
    f.ref_bins = np.array(r["bins"], dtype=np.int64)
    f.cur_bins = np.zeros(len(f.edges) + 1, dtype=np.int64)
    return f


def _too_many(name: str, section: DriftPolicy) -> InputDataError:
    return InputDataError(f"feature '{name}' has more than max_categories ({section.max_categories}) distinct "
                          "categories: exclude it or declare it numeric")


def _current_categories(name: str, names: Sequence[str], counts: Sequence[int], rows: int, ref: DriftReference,
                        section: DriftPolicy, key_of: dict[str, str]) -> dict[str, Any]:
    """A partition's state of a categorical feature: its counts per reference category (by position)
    and per unseen category (by salted digest). ``key_of``: keys made so far (a name's key is the
    same for every feature)."""
    keys = ref.state[name]["keys"]
    position = {k: i for i, k in enumerate(keys)}
    seen = [0] * len(keys)
    unseen: dict[str, int] = {}
    for n, count in zip(names, counts):
        key = key_of.get(n) or key_of.setdefault(n, category_key(ref.salt, n))
        if key in position:
            seen[position[key]] += int(count)
        else:
            unseen[key] = unseen.get(key, 0) + int(count)
    if len(keys) + len(unseen) > section.max_categories:
        raise _too_many(name, section)
    return {"rows": rows, "missing": rows - sum(counts), "counts": seen, "unseen": dict(sorted(unseen.items()))}


@dataclass
class DriftSummary(PartitionSummary):
    gate: str
    partition: str
    policy: str
    reference: str  # digest of the DriftReference
    features: list[str]
    max_categories: int
    types: dict[str, str]  # current type of each feature
    kinds: dict[str, str | None]  # current kind of each feature (numeric, categorical, None: unsupported)
    coverage: Coverage
    current: dict[str, dict[str, Any]]  # feature -> current state (absent: type differs from the reference)

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "partition": self.partition, "policy": self.policy, "reference": self.reference,
                "features": self.features, "max_categories": self.max_categories, "types": self.types, "kinds": self.kinds,
                "coverage": self.coverage.to_json(), "current": self.current}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DriftSummary:
        c = verified_content(d)
        try:
            return cls(gate=str(c["gate"]), partition=str(c["partition"]), policy=str(c["policy"]),
                       reference=str(c["reference"]), features=[str(f) for f in c["features"]],
                       max_categories=int(c["max_categories"]), types={str(k): str(v) for k, v in c["types"].items()},
                       kinds={str(k): None if v is None else str(v) for k, v in c["kinds"].items()},
                       coverage=Coverage.from_json(c["coverage"]),
                       current={str(k): dict(v) for k, v in c["current"].items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputDataError(f"a drift partition summary is malformed ({type(exc).__name__})") from None

    def merge(self, other: DriftSummary) -> DriftSummary:
        from airflow_aisec.core.stats import ValueSketch

        self.require_same(other)  # same gate first: another gate's summary lacks these fields
        self.require_same(other, policy=(self.policy, other.policy), reference=(self.reference, other.reference),
                          features=(self.features, other.features))
        if self.types != other.types:
            bad = sorted(k for k in self.types if self.types[k] != other.types.get(k))
            raise InputDataError(f"partitions disagree on the type of feature(s) {bad[:5]} "
                                 f"({self.partition}, {other.partition})")
        current: dict[str, dict[str, Any]] = {}
        for name in sorted(self.current):
            a, b = self.current[name], other.current[name]
            out = {"rows": a["rows"] + b["rows"], "missing": a["missing"] + b["missing"]}
            if "sketch" in a:
                sketch = ValueSketch.from_json(a["sketch"]).merged(ValueSketch.from_json(b["sketch"]))
                out.update(sketch=sketch.to_json(), bins=[x + y for x, y in zip(a["bins"], b["bins"])])
            else:
                unseen = {k: a["unseen"].get(k, 0) + b["unseen"].get(k, 0) for k in sorted({*a["unseen"], *b["unseen"]})}
                if len(a["counts"]) + len(unseen) > self.max_categories:
                    raise InputDataError(f"feature '{name}' has more than max_categories ({self.max_categories}) "
                                         "distinct categories: exclude it or declare it numeric")
                out.update(counts=[x + y for x, y in zip(a["counts"], b["counts"])], unseen=unseen)
            current[name] = out
        coverage = self.coverage.merge(other.coverage)
        return DriftSummary(gate=GATE, partition=merged_id(coverage.parts), policy=self.policy,
                            reference=self.reference, features=self.features, max_categories=self.max_categories,
                            types=self.types, kinds=self.kinds, coverage=coverage, current=current)


def summarize_partition(section: DriftPolicy, partition_uri: str, *, partition_id: str | None = None,
                        s3_client: Any = None, fmt: str | None = None, reference: Any = None,
                        features: Sequence[str] | str | None = None, **gate_inputs: Any) -> DriftSummary:
    """Stream one current partition (a CSV / Parquet file or ``file.parquet#row_group=N``) into a summary.

    Args:
        reference: The reference: a :class:`DriftReference` (or its signed JSON), or its URI (then
            summarized here, one reference pass per partition).
        features: As for :func:`~.check.check_drift`.

    Raises:
        InputDataError / ConfigurationError: as the single-node check, for what one partition can tell.
    """
    from airflow_aisec.core.gates.drift._block import small_table, value_matrix
    from airflow_aisec.core.gates.drift._categories import CategoricalBlock
    from airflow_aisec.core.gates.drift._columns import record_batches
    from airflow_aisec.core.gates.drift._evaluate import feature_kinds
    from airflow_aisec.core.gates.drift._summary_block import current_states
    from airflow_aisec.core.partitions import partition_batches

    ref = _reference(section, reference, features, s3_client)
    partition_id = partition_id or str(partition_uri)
    forced = set(section.categorical)
    current: dict[str, dict[str, Any]] = {}
    with partition_batches(partition_uri, ref.features, s3_client=s3_client, fmt=fmt) as (schema, batches, uri, digest):
        read_types = schema_lists(schema)[1]  # the partition's columns are ref.features, in order
        types = dict(zip(ref.features, type_names(read_types)))
        kinds = dict(zip(ref.features, feature_kinds(read_types, [n in forced for n in ref.features])))
        read = [n for n in ref.features if kinds[n] == ref.kinds[n]]
        numeric_names = [n for n in read if ref.kinds[n] == "numeric"]
        position = {n: i for i, n in enumerate(ref.features)}
        numeric_at = [position[n] for n in numeric_names]
        categorical = [n for n in read if ref.kinds[n] == "categorical"]
        # The partition's categories as a block's "reference": one id matrix while small.
        categories = CategoricalBlock(categorical, section) if categorical else None
        categorical_at = [position[n] for n in categorical]
        # A small partition's numeric columns are one matrix (states for all features at once); past
        # the limits they stream into one accumulator per feature.
        matrices: list[Any] | None = []
        numeric: dict[str, NumericFeature] = {}
        rows = 0
        for batch in record_batches(batches, ref.features):
            rows += batch.rows
            if matrices is not None and small_table(rows, len(numeric_names)):
                matrices.append(value_matrix(batch, numeric_at))
            else:
                if matrices is not None:  # spill: the rows kept so far, then this batch, per feature
                    numeric = {n: _numeric(n, section, ref, sketch=False) for n in numeric_names}
                    for kept in matrices:
                        for j, f in enumerate(numeric.values()):
                            f.add_current_values(kept[:, j])
                    matrices = None
                for f, column in zip(numeric.values(), batch.columns(numeric_at)):
                    f.add_current(column)
            if categories is not None:
                categories.add_reference(batch, categorical_at)
    if matrices is not None and numeric_names:
        import numpy as np

        values = np.concatenate(matrices) if matrices else np.empty((0, len(numeric_names)))
        edges = [_unfloats(ref.state[n]["edges"]) for n in numeric_names]
        current.update(zip(numeric_names, current_states(values, edges, section)))
    for n, f in numeric.items():
        current[n] = {"rows": f.cur_rows, "missing": f.cur_missing, "sketch": f.cur.to_json(),
                      "bins": [int(x) for x in f.cur_bins]}
    if categories is not None:
        key_of: dict[str, str] = {}
        for n, (names, counts) in zip(categorical, categories.categories()):
            current[n] = _current_categories(n, names, counts, rows, ref, section, key_of)
    return DriftSummary(gate=GATE, partition=partition_id, policy=section_digest(section), reference=ref.digest(),
                        features=ref.features, max_categories=section.max_categories, types=types, kinds=kinds,
                        coverage=Coverage.single(partition_id, uri, partition_order(partition_uri), rows, sha256=digest),
                        current=dict(sorted(current.items())))


# --- judging the merged summary -------------------------------------------------------------------

def _category_counts(name: str, ref: DriftReference, cur: dict[str, Any]) -> tuple[list[str], list[int], list[int]]:
    """A categorical feature's category names (the reference's, then the unseen ones), reference counts
    and current counts, in the order :func:`_categorical` numbers them."""
    r = ref.state[name]
    shown = ref.labels.get(name, {})
    unseen = sorted(cur["unseen"])
    return ([shown.get(i, key) for i, key in enumerate(r["keys"])] + unseen, [int(c) for c in r["counts"]],
            [int(c) for c in cur["counts"]] + [int(cur["unseen"][k]) for k in unseen])


def _categorical(name: str, section: DriftPolicy, ref: DriftReference, cur: dict[str, Any]) -> CategoricalFeature:
    import numpy as np

    from airflow_aisec.core.gates.drift._features import CategoricalFeature
    from airflow_aisec.core.stats import CategoryIndex

    r = ref.state[name]
    shown = ref.labels.get(name, {})
    names = [shown.get(i, key) for i, key in enumerate(r["keys"])] + sorted(cur["unseen"])
    f = CategoricalFeature(name, section)
    f.index = CategoryIndex.from_names(names)
    f.ref_counts = np.array(r["counts"], dtype=np.int64)
    f.cur_counts = np.array(list(cur["counts"]) + [cur["unseen"][k] for k in sorted(cur["unseen"])], dtype=np.int64)
    f.ref_rows, f.ref_missing, f.ref_categories = int(r["rows"]), int(r["missing"]), len(r["keys"])
    f.cur_rows, f.cur_missing = int(cur["rows"]), int(cur["missing"])
    return f


def check_summary(section: DriftPolicy, summary: DriftSummary, *, reference: Any = None,
                  features: Sequence[str] | str | None = None, report: str | None = None,
                  report_meta: Mapping[str, Any] | None = None, s3_client: Any = None,
                  report_s3_client: Any = None, data: str | None = None, **gate_inputs: Any) -> CheckOutcome:
    """:func:`~.check.check_drift`'s verdict, findings and metrics on the merged current summary.

    ``reference`` as given to the partitions (URI: summarized again here and matched by digest).

    Raises:
        ConfigurationError: another policy section or another reference. InputDataError: rows of a
        partition not scanned, an empty current table, and the single-node check's bad-input errors.
    """
    import numpy as np

    from airflow_aisec.core.collector import collector_paused
    from airflow_aisec.core.gates.drift._block import entry, matrix_stats, small_table
    from airflow_aisec.core.gates.drift._categories import CategoricalBlock
    from airflow_aisec.core.gates.drift._judge import Judge, type_changed
    from airflow_aisec.core.gates.drift._summary_block import value_matrices
    from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
    from airflow_aisec.core.stats import ValueSketch

    if summary.gate != GATE or summary.policy != section_digest(section):
        raise ConfigurationError("the drift summaries were made under a different drift policy section")
    ref = _reference(section, reference, features, s3_client)
    if ref.digest() != summary.reference:
        raise ConfigurationError("the drift summaries were made against another reference (reference digest differs)")
    summary.coverage.offsets()  # every row of every partition seen exactly once
    files = summary.coverage.files()
    cur_rows = summary.coverage.rows
    if cur_rows == 0:
        raise InputDataError(f"the current table is empty: {data or summary.coverage.root()}")
    judge = Judge(section)
    findings: list[Finding] = []
    numeric: list[str] = []
    categorical: list[str] = []
    accumulators: dict[str, Any] = {}
    for name in ref.features:
        kind = ref.kinds[name]
        if name not in summary.current:
            findings.append(type_changed(name, kind, summary.kinds.get(name), ref.types[name], summary.types[name]))
        elif kind == "numeric":
            numeric.append(name)
        else:
            judge.require_applicable(name)
            categorical.append(name)
    cache: dict[Any, Any] = {}
    rows = (ref.rows, cur_rows)
    results: dict[str, tuple[dict[str, Any], list[str]]] = {}
    with collector_paused():
        # Small tables' categories: the single-node check's block, laid out from the counts.
        block = CategoricalBlock.from_counts(categorical, section, rows, [
            _category_counts(name, ref, summary.current[name]) for name in categorical]) if categorical else None
        if block is not None:
            results.update(zip(categorical, block.stats(cache, rows)))
        else:
            for name in categorical:
                accumulators[name] = _categorical(name, section, ref, summary.current[name])
        # Small tables: their exact sketches rebuilt as value matrices, compared as the single-node check does.
        ref_values = cur_values = None
        if numeric and small_table(max(rows), len(numeric)):
            ref_values = value_matrices([ref.state[n] for n in numeric], ref.rows)
            cur_values = None if ref_values is None else value_matrices([summary.current[n] for n in numeric],
                                                                        cur_rows)
        if cur_values is not None:
            assert ref_values is not None
            results.update(zip(numeric, matrix_stats(ref_values, cur_values, section, cache, numeric, rows)))
        else:
            for name in numeric:
                cur = summary.current[name]
                f = _numeric(name, section, ref)
                f.cur = ValueSketch.from_json(cur["sketch"])
                f.cur_bins = np.array(cur["bins"], dtype=np.int64)
                f.cur_rows, f.cur_missing = int(cur["rows"]), int(cur["missing"])
                accumulators[name] = f
        for name, f in accumulators.items():
            stats, labels = f.stats(cache)
            results[name] = (entry(name, f.kind, rows, stats), labels)
        evaluation = judge.evaluate(ref.features, ref.kinds, results, ref.rows, cur_rows, findings, entries=True)
    metrics, report_labels = evaluation.metrics, evaluation.report_labels
    inputs = [InputRef(uri=ref.uri, sha256=ref.sha256), *(InputRef(uri=u, sha256=d) for u, d in files)]
    outcome = CheckOutcome(findings=findings, metrics=metrics, inputs=inputs)
    outcome.metrics["partitions"] = {"count": len(summary.coverage.parts), "reference_digest": summary.reference}
    if report:
        from airflow_aisec.core.gates.drift._report import render_drift_report
        from airflow_aisec.core.report import write_report

        html_text = render_drift_report(metrics, findings, inputs=inputs, meta=report_meta or {}, labels=report_labels)
        ref_out, digest = write_report(html_text, report, name="drift-report", s3_client=report_s3_client or s3_client)
        outcome.reports.append(ref_out)
        outcome.metrics["report_sha256"] = digest
    return outcome
