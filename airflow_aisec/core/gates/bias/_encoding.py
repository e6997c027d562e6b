"""Label, prediction, score and sensitive columns (pyarrow) as numpy codes, batch by batch; messages never
quote values. Category ids come from :class:`~airflow_aisec.core.stats.CategoryIndex` (stable across
batches); which spelling of a label is positive is decided once the whole column has been seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_aisec.core.stats import CategoryIndex, canonical_text
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Group name of rows without a sensitive value (``missing_sensitive: group``).
MISSING_LABEL = "<missing>"
_YAML_BOOLS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false", "off": "false"}


def binary_lut(names: list[str], missing: int, name: str, role: str, positive: Any, negative: Any) -> np.ndarray:
    """0/1 for each canonical spelling (``names``, lower-case) of a label/prediction column.

    Raises:
        InputDataError: missing values, more than two values, or values the policy does not map.
    """
    import numpy as np

    canon: list[str] = list(names)
    if isinstance(positive, bool) or isinstance(negative, bool):
        # YAML 1.1 reads an unquoted `yes`/`no` as a boolean: match the column's spellings too.
        canon = [_YAML_BOOLS.get(c, c) for c in canon]
    if missing:
        raise InputDataError(f"{role} column '{name}' has {missing} missing value(s); every row needs one")
    distinct = sorted(set(canon))
    pos = canonical_text(positive, lower=True) if positive is not None else None
    neg = canonical_text(negative, lower=True) if negative is not None else None
    if pos is None:
        if neg is not None:
            raise ConfigurationError(f"{role}: a negative label is set without a positive label")
        for candidates, default in (({"0", "1"}, "1"), ({"true", "false"}, "true"), ({"-1", "1"}, "1")):
            if set(distinct) <= candidates:
                pos = default
                break
        else:
            raise InputDataError(
                f"{role} column '{name}' is not binary 0/1 or true/false ({len(distinct)} distinct value(s)); "
                f"map it with bias.positive_label"
                + (" / bias.prediction_positive_label" if role == "prediction" else "")
            )
    if neg is not None:
        if set(distinct) - {pos, neg}:
            raise InputDataError(
                f"{role} column '{name}' has {len(set(distinct) - {pos, neg})} value(s) that are neither the "
                f"positive nor the negative label"
            )
    elif len(distinct) > 2:
        raise InputDataError(f"{role} column '{name}' is not binary: {len(distinct)} distinct values")
    elif len(distinct) == 2 and pos not in distinct:
        raise InputDataError(f"{role} column '{name}': the positive label set in the policy is not one of its values")
    return np.array([1 if c == pos else 0 for c in canon], dtype=np.int8)


def binary_codes(column: pa.ChunkedArray, name: str, role: str, positive: Any, negative: Any) -> np.ndarray:
    """Map a whole label/prediction column to 0/1 (see :func:`binary_lut`)."""
    import numpy as np

    index = CategoryIndex(lower=True)
    codes = index.encode(column)
    lut = binary_lut(index.names, int(np.count_nonzero(codes < 0)), name, role, positive, negative)
    return lut[codes] if len(lut) else np.zeros(len(codes), dtype=np.int8)


def score_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)):
        raise InputDataError(f"score column '{name}' is not numeric")
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise InputDataError(f"score column '{name}' has {bad} missing or non-finite value(s)")
    return values


def sensitive_index(name: str, mode: str, max_groups: int) -> CategoryIndex:
    """The streamed category index of a sensitive column (missing values: own group or ``-1``)."""
    return CategoryIndex(missing_name=MISSING_LABEL if mode == "group" else None, limit=max_groups)


def encode_sensitive(index: CategoryIndex, column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """Group codes of a batch of a sensitive column (``-1``: missing, left out).

    Raises:
        InputDataError: more distinct values than ``max_groups`` (raised as soon as seen).
    """
    try:
        return index.encode(column)
    except OverflowError:
        raise InputDataError(
            f"sensitive column '{name}' has more than max_groups ({index.limit}) distinct values: "
            "is it a categorical column?"
        ) from None
