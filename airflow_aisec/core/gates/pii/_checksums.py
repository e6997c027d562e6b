"""Check digits of the European identifiers Presidio lacks, one value at a time and vectorized.

Each rule has a scalar form (used by the recognizers in :mod:`._national` on a match) and a numpy
form over many values at once (:func:`valid_many`, used on whole-cell columns); both take the
value with separators (spaces, dots, dashes) removed and are tested to agree.

* FR NIR (INSEE): key = 97 - (first 13 digits mod 97), Corsica 2A / 2B counted as 19 / 18;
* FR SIREN (9 digits) and SIRET (14 digits): Luhn (La Poste's SIRETs, SIREN 356000000, use the
  digit sum mod 5);
* NL BSN: the 11-check (weights 9..2 and -1);
* BE national number: 97 - (first 9 digits mod 97), with a ``2`` in front for births from 2000;
* AT social security number: weighted sum mod 11 in the fourth digit (weights 3 7 9 . 5 8 4 2 1 6);
* CH AHV / AVS: EAN-13 (weights 1 and 3), country prefix 756.

numpy is imported inside the functions that use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

_SEPARATORS = re.compile(r"[\s./-]")


def normalise(value: str) -> str:
    """The value without separators, upper-case (``"1 85 05 2A 006 084 36"`` -> ``"185052A00608436"``)."""
    return _SEPARATORS.sub("", value).upper()


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def fr_nir(value: str) -> bool:
    v = normalise(value)
    if len(v) != 15 or not v[7:].isdigit() or not v[:5].isdigit():
        return False
    dept = v[5:7]
    if dept == "2A":
        body = int(v[:5] + "19" + v[7:13])
    elif dept == "2B":
        body = int(v[:5] + "18" + v[7:13])
    elif dept.isdigit():
        body = int(v[:13])
    else:
        return False
    return 97 - body % 97 == int(v[13:])


def fr_siren(value: str) -> bool:
    v = normalise(value)
    return len(v) == 9 and v.isdigit() and v != "000000000" and _luhn(v)


def fr_siret(value: str) -> bool:
    v = normalise(value)
    if len(v) != 14 or not v.isdigit() or v == "0" * 14:
        return False
    if v.startswith("356000000"):  # La Poste: one SIREN, many establishments
        return sum(int(c) for c in v) % 5 == 0
    return _luhn(v)


def nl_bsn(value: str) -> bool:
    v = normalise(value)
    if len(v) != 9 or not v.isdigit() or v == "0" * 9:
        return False
    total = sum(int(c) * w for c, w in zip(v, (9, 8, 7, 6, 5, 4, 3, 2, -1)))
    return total % 11 == 0


def be_national_number(value: str) -> bool:
    v = normalise(value)
    if len(v) != 11 or not v.isdigit():
        return False
    body, check = int(v[:9]), int(v[9:])
    return 97 - body % 97 == check or 97 - (2_000_000_000 + body) % 97 == check


_AT_WEIGHTS = (3, 7, 9, 0, 5, 8, 4, 2, 1, 6)


def at_social_security(value: str) -> bool:
    v = normalise(value)
    if len(v) != 10 or not v.isdigit() or v[0] == "0":
        return False
    rest = sum(int(c) * w for c, w in zip(v, _AT_WEIGHTS)) % 11
    return rest != 10 and rest == int(v[3])


def ch_ahv(value: str) -> bool:
    v = normalise(value)
    if len(v) != 13 or not v.isdigit() or not v.startswith("756"):
        return False
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(v[:12]))
    return (10 - total % 10) % 10 == int(v[12])


#: Scalar check per entity.
SCALAR: dict[str, Callable[[str], bool]] = {
    "FR_NIR": fr_nir,
    "FR_SIREN": fr_siren,
    "FR_SIRET": fr_siret,
    "NL_BSN": nl_bsn,
    "BE_NATIONAL_NUMBER": be_national_number,
    "AT_SOCIAL_SECURITY": at_social_security,
    "CH_AHV": ch_ahv,
}
#: Chance that a random value of the right shape passes the check (for the chance correction).
CHANCE: dict[str, float] = {
    "FR_NIR": 1 / 97, "FR_SIREN": 0.1, "FR_SIRET": 0.1, "NL_BSN": 1 / 11, "BE_NATIONAL_NUMBER": 2 / 97,
    "AT_SOCIAL_SECURITY": 1 / 11, "CH_AHV": 0.1,
}
_LENGTH = {"FR_NIR": 15, "FR_SIREN": 9, "FR_SIRET": 14, "NL_BSN": 9, "BE_NATIONAL_NUMBER": 11,
           "AT_SOCIAL_SECURITY": 10, "CH_AHV": 13}


def _digit_matrix(values: Sequence[str], length: int) -> tuple[Any, Any]:
    """``(rows, ok)``: an ``(n, length)`` int64 digit matrix and which values are ``length`` ASCII digits."""
    import numpy as np

    raw = np.array([v.encode("ascii", "replace") if len(v) == length else b"" for v in values], dtype=f"S{length}")
    mat = raw.view(np.uint8).reshape(len(values), length).astype(np.int64) - 48
    ok = ((mat >= 0) & (mat <= 9)).all(axis=1)
    return np.where(ok[:, None], mat, 0), ok


def _number(mat: Any) -> Any:
    import numpy as np

    out = np.zeros(len(mat), dtype=np.int64)
    for j in range(mat.shape[1]):
        out = out * 10 + mat[:, j]
    return out


def _luhn_many(mat: Any) -> Any:
    doubled = mat[:, -2::-2] * 2
    total = mat[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return total % 10 == 0


def valid_many(entity: str, values: Sequence[str]) -> Any:
    """The entity's check over many values at once (numpy bool array); same rule as :data:`SCALAR`."""
    import numpy as np

    norm = [normalise(v) for v in values]
    n = len(norm)
    if not n:
        return np.zeros(0, dtype=bool)
    length = _LENGTH[entity]
    if entity == "FR_NIR":
        corsica = np.array([v[5:7] for v in norm])
        swapped = [v[:5] + ("19" if c == "2A" else "18" if c == "2B" else v[5:7]) + v[7:] if len(v) == 15 else v
                   for v, c in zip(norm, corsica)]
        mat, ok = _digit_matrix(swapped, length)
        return ok & (97 - _number(mat[:, :13]) % 97 == _number(mat[:, 13:]))
    mat, ok = _digit_matrix(norm, length)
    nonzero = mat.any(axis=1)
    if entity == "FR_SIREN":
        return ok & nonzero & _luhn_many(mat)
    if entity == "FR_SIRET":
        poste = _number(mat[:, :9]) == 356000000
        return ok & nonzero & np.where(poste, mat.sum(axis=1) % 5 == 0, _luhn_many(mat))
    if entity == "NL_BSN":
        return ok & nonzero & ((mat @ np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])) % 11 == 0)
    if entity == "BE_NATIONAL_NUMBER":
        body, check = _number(mat[:, :9]), _number(mat[:, 9:])
        return ok & ((97 - body % 97 == check) | (97 - (2_000_000_000 + body) % 97 == check))
    if entity == "AT_SOCIAL_SECURITY":
        rest = (mat @ np.array(_AT_WEIGHTS)) % 11
        return ok & (mat[:, 0] != 0) & (rest != 10) & (rest == mat[:, 3])
    if entity == "CH_AHV":
        total = mat[:, :12] @ np.array([1, 3] * 6)
        return ok & (_number(mat[:, :3]) == 756) & ((10 - total % 10) % 10 == mat[:, 12])
    raise KeyError(entity)
