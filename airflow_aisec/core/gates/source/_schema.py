"""Column schema: declared types (pyarrow type names or families) against the table's types.

For CSV the declared type drives parsing, so that the policy rather than inference decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._context import Context, finding
from airflow_aisec.core.policy.sections.source import TYPE_FAMILIES, SourcePolicy, pyarrow_type

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.source._columns import SchemaColumns
    from airflow_aisec.core.gates.source._origin import Target


def _family_matches(family: str, t: pa.DataType) -> bool:
    import pyarrow as pa

    T = pa.types
    return {
        "any": True,
        "integer": T.is_integer(t),
        "floating": T.is_floating(t),
        "numeric": T.is_integer(t) or T.is_floating(t) or T.is_decimal(t),
        "decimal": T.is_decimal(t),
        "string": T.is_string(t) or T.is_large_string(t) or T.is_string_view(t),
        "boolean": T.is_boolean(t),
        "timestamp": T.is_timestamp(t),
        "date": T.is_date(t),
        "temporal": T.is_temporal(t),
        "binary": T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t) or T.is_binary_view(t),
    }[family]


def type_matches(declared: str, actual: pa.DataType) -> bool:
    """Whether a column's pyarrow type satisfies a declared type (family or exact pyarrow type)."""
    key = declared.strip().lower()
    if key in TYPE_FAMILIES:
        return _family_matches(TYPE_FAMILIES[key], actual)
    expected = pyarrow_type(declared.strip())
    if expected == actual:
        return True
    # A string declared as 'string' also accepts large_string is handled by the family; here only
    # timestamps get leeway: 'timestamp[us]' matches any time zone of that unit.
    import pyarrow as pa

    return bool(pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual) and expected.unit == actual.unit)


def csv_conversion_type(declared: str) -> pa.DataType | None:
    """Type to convert a CSV column to, so that the declared type rather than inference decides."""
    import pyarrow as pa

    key = declared.strip().lower()
    family = TYPE_FAMILIES.get(key)
    if family is None:
        return pyarrow_type(declared.strip())
    return {"integer": pa.int64(), "floating": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}.get(family)


def declared_csv_types(section: SourcePolicy) -> dict[str, Any]:
    """Column -> pyarrow type for reading a CSV (columns whose family fixes no single type are inferred)."""
    if section.table_schema is None:
        return {}
    types = {}
    for name, declared in section.table_schema.columns.items():
        converted = csv_conversion_type(declared)
        if converted is not None:
            types[name] = converted
    return types


def check_schema(ctx: Context, target: Target, cols: SchemaColumns) -> None:
    """Append ``schema_type`` / ``schema_extra_column`` findings (declared columns exist: checked before)."""
    policy = ctx.section.table_schema
    if policy is None:
        return
    for name, declared in policy.columns.items():
        actual = cols.type_of(name)
        if not type_matches(declared, actual):
            ctx.findings.append(finding(
                "schema_type", f"{target.uri}: column '{name}' is {actual}, the policy requires {declared}",
                count=1, uri=target.uri, column=name, actual_type=str(actual), expected_type=declared,
            ))
    if not policy.allow_extra_columns:
        extra = [n for n in cols.names if n not in policy.columns]
        if extra:
            ctx.findings.append(finding(
                "schema_extra_column",
                f"{target.uri}: {len(extra)} column(s) not in the policy schema: "
                + ", ".join(repr(n) for n in extra[:20]) + (" ..." if len(extra) > 20 else ""),
                count=len(extra), uri=target.uri, columns=extra[:100],
            ))
