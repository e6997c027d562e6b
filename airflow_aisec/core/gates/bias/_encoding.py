"""Label, prediction, score and sensitive columns (pyarrow) as numpy codes; messages never quote values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.stats import canonical_text, category_codes, dictionary_codes
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Group name of rows without a sensitive value (``missing_sensitive: group``).
MISSING_LABEL = "<missing>"
_YAML_BOOLS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false", "off": "false"}


def binary_codes(column: pa.ChunkedArray, name: str, role: str, positive: Any, negative: Any) -> np.ndarray:
    """Map a label/prediction column to 0/1.

    Raises:
        InputDataError: missing values, more than two values, or values the policy does not map.
    """
    import numpy as np

    codes, values = dictionary_codes(column)
    canon = [canonical_text(v, lower=True) for v in values]
    if isinstance(positive, bool) or isinstance(negative, bool):
        # YAML 1.1 reads an unquoted `yes`/`no` as a boolean: match the column's spellings too.
        canon = [_YAML_BOOLS.get(c, c) if c is not None else None for c in canon]
    missing = int(np.count_nonzero(codes < 0))
    bad_codes = [i for i, c in enumerate(canon) if c is None]
    if bad_codes:
        missing += int(np.count_nonzero(np.isin(codes, bad_codes)))
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
    lut = np.array([1 if c == pos else 0 for c in canon] or [0], dtype=np.int8)
    return lut[codes]


def score_values(column: pa.ChunkedArray, name: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)):
        raise InputDataError(f"score column '{name}' is not numeric")
    values = column.combine_chunks().cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise InputDataError(f"score column '{name}' has {bad} missing or non-finite value(s)")
    return values


@dataclass
class SensitiveCodes:
    codes: np.ndarray  # int64, -1 = missing (left out)
    labels: list[str]
    missing_rows: int



def sensitive_codes(column: pa.ChunkedArray, name: str, mode: str, max_groups: int) -> SensitiveCodes:
    import numpy as np

    codes, labels = category_codes(column)
    missing = codes < 0
    missing_rows = int(np.count_nonzero(missing))
    if missing_rows and mode == "group":
        codes = np.where(missing, len(labels), codes)
        labels.append(MISSING_LABEL)
    if len(labels) > max_groups:
        raise InputDataError(
            f"sensitive column '{name}' has {len(labels)} distinct values, more than max_groups "
            f"({max_groups}): is it a categorical column?"
        )
    return SensitiveCodes(codes=codes, labels=labels, missing_rows=missing_rows)
