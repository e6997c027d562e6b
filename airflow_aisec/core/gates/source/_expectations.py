"""Great Expectations (GX Core 1.x) expectations for the source gate, evaluated in bounded memory.

Expectations come from the policy (``source.expectations.expect``, schema in
:mod:`airflow_aisec.core.policy.sections.source`) and/or a GX suite JSON file
(``source.expectations.suite``). They run in an *ephemeral* GX context (nothing written to disk,
no analytics, no progress bars), in three groups so that a file larger than memory can be checked:

* **row-local** expectations (GX column-map, column-pair-map and multicolumn-map expectations that
  judge each row on its own, e.g. ``expect_column_values_to_be_between``) run on every streamed
  batch; their ``element_count`` / ``missing_count`` / ``unexpected_count`` are summed over the
  batches and ``mostly`` is applied to the totals, so the verdict equals a whole-table run;
* **schema** expectations (``expect_column_to_exist``, ``expect_table_columns_to_match_set``, ...)
  run once on an empty frame carrying the table's columns and types;
* **whole-table** expectations (aggregates such as ``expect_column_mean_to_be_between``, and map
  expectations that compare rows with each other: ``expect_column_values_to_be_unique``,
  ``..._increasing``, z-scores, outliers) need every row: only the columns they name are kept,
  and only up to ``max_full_table_rows`` rows (a clear error beyond). Row-count expectations keep
  no column at all. This is the documented memory limit of the gate.

``great_expectations`` takes ~6 s to import: it is imported inside functions only, and only when
a policy declares expectations. Results never copy GX's ``partial_unexpected_list`` or
``observed_value`` (they hold cell values): findings carry counts and column names only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._context import Context, S3ClientProvider, finding, read_policy_file
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.policy.sections.source import EXPECTATION_TYPE_PATTERN, ExpectationSpec, SourcePolicy
from airflow_aisec.core.result import InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.source._origin import Target

#: Map expectations whose verdict depends on other rows: they cannot be summed over batches.
CROSS_ROW_MAP = frozenset(
    {
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_decreasing",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_not_be_outliers",
    }
)
#: Expectations that only look at the table's columns and types.
SCHEMA_ONLY = frozenset(
    {
        "expect_column_to_exist",
        "expect_column_type_to_be",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
    }
)
#: Expectations that need another table or SQL: meaningless on a streamed file.
UNSUPPORTED = frozenset(
    {
        "expect_table_row_count_to_equal_other_table",
        "expect_query_results_to_match_comparison",
        "unexpected_rows_expectation",
    }
)
#: Keyword arguments that name columns.
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}

ROW, SCHEMA, TABLE = "row", "schema", "table"


@dataclass
class ExpectationItem:
    """An expectation to evaluate, with where it came from and its running totals."""

    index: int
    origin: str
    type: str
    kwargs: dict[str, Any]
    mode: str = ROW
    element_count: int = 0
    missing_count: int = 0
    unexpected_count: int = 0
    success: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.origin}[{self.index}] ({self.type})"

    @property
    def columns(self) -> list[str]:
        return referenced_columns(self.type, self.kwargs)


@dataclass
class ExpectationOutcome:
    """Value-free result of one expectation over the whole input."""

    type: str
    origin: str
    index: int
    mode: str
    columns: list[str]
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def referenced_columns(type_: str, kwargs: dict[str, Any]) -> list[str]:
    """Column names an expectation's arguments refer to (validated as strings)."""
    names: list[str] = []
    for key in _COLUMN_KWARGS:
        if key in kwargs:
            names.append(kwargs[key])
    for key in _COLUMN_LIST_KWARGS:
        if key in kwargs and type_ not in SCHEMA_ONLY:
            value = kwargs[key]
            if not isinstance(value, (list, tuple)):
                raise ConfigurationError(f"{type_}: '{key}' must be a list of column names")
            names.extend(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{type_}: column names must be non-empty strings")
    return list(dict.fromkeys(names))


def parse_suite(data: bytes, source: str) -> list[ExpectationSpec]:
    """Read a GX suite JSON (GX 1.x ``type`` or GX 0.x ``expectation_type`` entries).

    Raises:
        ConfigurationError: not JSON, not a suite, or an entry without a valid type.
    """
    try:
        document = loads_json(data.decode("utf-8"))
    except ValueError:
        raise ConfigurationError(f"{source}: GX suite is not valid JSON") from None
    if isinstance(document, dict):
        entries = document.get("expectations")
    else:
        entries = document
    if not isinstance(entries, list):
        raise ConfigurationError(f"{source}: GX suite has no 'expectations' list")
    specs: list[ExpectationSpec] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{source}: expectations[{i}] is not a mapping")
        type_ = entry.get("type") or entry.get("expectation_type")
        kwargs = entry.get("kwargs", {})
        if not isinstance(type_, str) or not EXPECTATION_TYPE_PATTERN.match(type_):
            raise ConfigurationError(f"{source}: expectations[{i}] has no valid 'type'")
        if not isinstance(kwargs, dict):
            raise ConfigurationError(f"{source}: expectations[{i}] 'kwargs' is not a mapping")
        specs.append(ExpectationSpec(type=type_, kwargs=kwargs))
    return specs


def build_items(policy_specs: Sequence[ExpectationSpec], suite_specs: Sequence[ExpectationSpec],
                suite_name: str = "suite") -> list[ExpectationItem]:
    """Number the expectations so messages can point at them (``expect[2]``, ``suite[0]``)."""
    items = [ExpectationItem(i, "expect", s.type, dict(s.kwargs)) for i, s in enumerate(policy_specs)]
    items += [ExpectationItem(i, suite_name, s.type, dict(s.kwargs)) for i, s in enumerate(suite_specs)]
    for item in items:
        # Per-call result formats and exception switches are the gate's business.
        item.kwargs.pop("result_format", None)
        item.kwargs.pop("catch_exceptions", None)
    return items


def _import_gx() -> Any:
    """``great_expectations``, imported so that pyspark cannot end the process.

    With pyspark installed GX imports pyspark's Connect modules, and without grpc those call
    ``sys.exit(0)`` when ``__main__`` has neither ``__spec__`` nor ``__file__``, taking it for a doctest
    run: ``python -c``, an embedded interpreter, a pytest-xdist worker. The check would end its
    process with status 0 and no result. ``__main__`` is given a ``__file__`` for the import only.
    """
    if "great_expectations" in sys.modules:
        return sys.modules["great_expectations"]
    main = sys.modules.get("__main__")
    lent = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if lent:
        main.__file__ = "<airflow-aisec>"  # type: ignore[union-attr]
    try:
        import great_expectations
    finally:
        if lent:
            del main.__file__  # type: ignore[union-attr]
    return great_expectations


def _classify(item: ExpectationItem) -> str:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    if item.type in UNSUPPORTED:
        raise ConfigurationError(f"{item.where}: not supported on a file (needs another table or SQL)")
    try:
        impl = get_expectation_impl(item.type)
    except Exception:  # noqa: BLE001 - GX raises its own ExpectationNotFoundError
        raise ConfigurationError(f"{item.where}: unknown Great Expectations expectation type") from None
    if item.type in SCHEMA_ONLY:
        return SCHEMA
    if item.type in CROSS_ROW_MAP:
        return TABLE
    if issubclass(impl, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)):
        return ROW
    return TABLE


def _instantiate(item: ExpectationItem) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    impl = get_expectation_impl(item.type)
    try:
        return impl(**item.kwargs)
    except Exception as exc:  # noqa: BLE001 - GX validates with pydantic v1; keep field names only
        fields: list[str] = []
        errors = getattr(exc, "errors", None)
        if callable(errors):
            try:
                fields = [".".join(str(p) for p in e.get("loc", ())) for e in errors()]
            except Exception:  # noqa: BLE001
                fields = []
        detail = f" (field(s): {', '.join(dict.fromkeys(fields))})" if fields else ""
        raise ConfigurationError(f"{item.where}: invalid arguments{detail}") from None


def _raised(info: Any) -> bool:
    if not isinstance(info, dict):
        return False
    if info.get("raised_exception"):
        return True
    return any(_raised(v) for v in info.values() if isinstance(v, dict))


class _Suite:
    """One GX suite + validation definition in the shared ephemeral context."""

    def __init__(self, context: Any, batch_definition: Any, name: str, items: list[ExpectationItem]):
        import great_expectations as gx

        self.items = items
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        self._ids: list[Any] = []
        for item in items:
            expectation = suite.add_expectation(_instantiate(item))
            self._ids.append(expectation.id)
        self.definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}-validation", data=batch_definition, suite=suite)
        )

    def run(self, frame: Any, uri: str) -> list[tuple[ExpectationItem, Any]]:
        result = self.definition.run(batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT)
        by_id = {r.expectation_config.id: r for r in result.results}
        pairs = []
        for item, eid in zip(self.items, self._ids):
            r = by_id.get(eid)
            if r is None:
                raise InputDataError(f"{uri}: {item.where}: Great Expectations returned no result")
            if _raised(r.exception_info):
                # GX's own message can quote data: keep the expectation and its columns only.
                cols = ", ".join(repr(c) for c in item.columns) or "the table"
                raise InputDataError(f"{uri}: {item.where} could not be evaluated on {cols}")
            pairs.append((item, r))
        return pairs


class GxValidator:
    """Streams batches through a GX suite, in bounded memory (see the module docstring).

    Args:
        items: Expectations to evaluate.
        schema: pyarrow schema of the input (all columns).
        uri: Input name for messages.
        max_full_table_rows: Limit for whole-table expectations.
    """

    def __init__(self, items: list[ExpectationItem], schema: pa.Schema, uri: str, max_full_table_rows: int):
        gx = _import_gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self.uri = uri
        self.schema = schema
        self.max_full_table_rows = max_full_table_rows
        for item in items:
            item.mode = _classify(item)
            item.element_count = item.missing_count = item.unexpected_count = 0
            item.success = None
        self.items = items
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self._context = gx.get_context(mode="ephemeral", project_config=config)
        asset = self._context.data_sources.add_pandas("aisec").add_dataframe_asset("input")
        batch_definition = asset.add_batch_definition_whole_dataframe("frame")
        groups = {mode: [i for i in items if i.mode == mode] for mode in (ROW, SCHEMA, TABLE)}
        self._suites = {
            mode: _Suite(self._context, batch_definition, f"aisec-{mode}", group)
            for mode, group in groups.items()
            if group
        }
        self.row_columns = self._columns(groups[ROW])
        self.table_columns = self._columns(groups[TABLE])
        self._table_batches: list[pa.RecordBatch] = []
        self._table_rows = 0
        self._done_schema = False

    @staticmethod
    def _columns(items: Iterable[ExpectationItem]) -> list[str]:
        names: list[str] = []
        for item in items:
            names.extend(item.columns)
        return list(dict.fromkeys(names))

    @property
    def required_columns(self) -> list[str]:
        """Columns that must exist in the data (schema expectations may name absent ones: that is their test)."""
        return list(dict.fromkeys(self.row_columns + self.table_columns))

    @property
    def scan_columns(self) -> list[str]:
        return self.required_columns

    def update(self, batch: pa.RecordBatch) -> None:
        """Feed one batch (it must contain :attr:`scan_columns`)."""
        if ROW in self._suites and batch.num_rows:
            frame = batch.select(self.row_columns).to_pandas()
            for item, r in self._suites[ROW].run(frame, self.uri):
                res = r.result or {}
                item.element_count += int(res.get("element_count") or 0)
                item.missing_count += int(res.get("missing_count") or 0)
                item.unexpected_count += int(res.get("unexpected_count") or 0)
        if TABLE in self._suites:
            self._table_rows += batch.num_rows
            if self._table_rows > self.max_full_table_rows:
                names = ", ".join(i.type for i in self._suites[TABLE].items)
                raise ConfigurationError(
                    f"{self.uri}: more than {self.max_full_table_rows} rows: whole-table expectation(s) "
                    f"({names}) need every row in memory; raise source.expectations.max_full_table_rows "
                    "or use row-level expectations"
                )
            if self.table_columns:
                self._table_batches.append(batch.select(self.table_columns))

    def _run_schema(self) -> None:
        frame = self.schema.empty_table().to_pandas()
        for item, r in self._suites[SCHEMA].run(frame, self.uri):
            item.success = bool(r.success)

    def _run_table(self, total_rows: int) -> None:
        import pandas as pd
        import pyarrow as pa

        if self.table_columns:
            table = pa.Table.from_batches(
                self._table_batches, schema=pa.schema([self.schema.field(c) for c in self.table_columns])
            )
            frame = table.to_pandas()
            del table
        else:
            # Row-count expectations need the number of rows, not their values: an index is enough.
            frame = pd.DataFrame(index=pd.RangeIndex(total_rows))
        self._table_batches = []
        for item, r in self._suites[TABLE].run(frame, self.uri):
            item.success = bool(r.success)
            res = r.result or {}
            if "unexpected_count" in res:
                item.element_count = int(res.get("element_count") or 0)
                item.missing_count = int(res.get("missing_count") or 0)
                item.unexpected_count = int(res.get("unexpected_count") or 0)

    def finish(self, total_rows: int) -> list[ExpectationOutcome]:
        """Evaluate what needs the whole input and return one outcome per expectation."""
        if SCHEMA in self._suites:
            self._run_schema()
        if TABLE in self._suites:
            self._run_table(total_rows)
        outcomes = []
        for item in self.items:
            if item.mode == ROW:
                item.success = _mostly_success(item)
            outcome = ExpectationOutcome(
                type=item.type,
                origin=item.origin,
                index=item.index,
                mode=item.mode,
                columns=item.columns if item.mode != SCHEMA else _schema_columns(item),
                success=bool(item.success),
            )
            if item.mode == ROW or item.unexpected_count:
                nonmissing = max(item.element_count - item.missing_count, 0)
                outcome.element_count = item.element_count
                outcome.unexpected_count = item.unexpected_count
                outcome.unexpected_percent = (100.0 * item.unexpected_count / nonmissing) if nonmissing else 0.0
            outcomes.append(outcome)
        return outcomes


def _schema_columns(item: ExpectationItem) -> list[str]:
    value = item.kwargs.get("column")
    return [value] if isinstance(value, str) else []


def _mostly_success(item: ExpectationItem) -> bool:
    """GX's ``mostly`` rule applied to the summed counts (equal to a whole-table run)."""
    mostly = item.kwargs.get("mostly", 1.0)
    try:
        mostly = float(mostly)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{item.where}: 'mostly' must be a number") from None
    nonmissing = item.element_count - item.missing_count
    if nonmissing <= 0:
        return True
    if mostly >= 1.0:
        return item.unexpected_count == 0
    return (nonmissing - item.unexpected_count) / nonmissing >= mostly


def load_expectations(section: SourcePolicy, base_dir: str | None, s3: S3ClientProvider,
                      inputs: list[InputRef]) -> list[ExpectationItem]:
    """The section's expectations (inline, then the suite file's), numbered for messages.

    Raises:
        ConfigurationError: the suite file is missing, unreadable or not a GX suite.
    """
    policy = section.expectations
    if policy is None:
        return []
    suite_specs: list[ExpectationSpec] = []
    suite_name = "suite"
    if policy.suite:
        location, data = read_policy_file(policy.suite, "GX suite", base_dir, s3, inputs)
        suite_specs = parse_suite(data, location)
    return build_items(policy.expect, suite_specs, suite_name)


def expectation_findings(ctx: Context, target: Target, outcomes: list[ExpectationOutcome],
                         metrics: dict[str, Any]) -> None:
    """One ``expectation`` finding per failed expectation (counts and column names, never values)."""
    failed = [o for o in outcomes if not o.success]
    metrics["expectations"] = {"evaluated": len(outcomes), "failed": len(failed)}
    for o in failed:
        on = ("on " + ", ".join(repr(c) for c in o.columns)) if o.columns else "on the table"
        if o.unexpected_count is not None:
            detail = f"{o.unexpected_count} of {o.element_count} rows unexpected ({o.unexpected_percent:.2f}% of non-null)"
        else:
            detail = "failed"
        ctx.findings.append(finding(
            "expectation", f"{target.uri}: {o.type} {on}: {detail}",
            count=o.unexpected_count if o.unexpected_count is not None else 1,
            uri=target.uri, expectation=o.type, expectation_index=f"{o.origin}[{o.index}]",
            columns=o.columns, mode=o.mode, element_count=o.element_count,
            unexpected_percent=None if o.unexpected_percent is None else round(o.unexpected_percent, 4),
        ))
