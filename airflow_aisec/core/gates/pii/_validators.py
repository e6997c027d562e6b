"""Presidio's validators, vectorized or made offline, and how often random digits pass them.

* Luhn (cards) over whole Arrow columns (:func:`luhn_valid_arrow`);
* python-phonenumbers' validity of +1 numbers, evaluated with RE2 over its metadata (:func:`nanp_valid`);
* Presidio's e-mail domain check on tldextract's bundled public-suffix list, never the network
  (:func:`has_fqdn`, :func:`offline_email_recognizer`);
* the chance correction: checksum matches no more frequent than random numbers would give are
  coincidences, not PII (:func:`coincidental`).

numpy, pyarrow, phonenumbers and tldextract are imported inside the functions that use them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from airflow_aisec.core.gates.pii._checksums import CHANCE as _NATIONAL_CHANCE
from airflow_aisec.core.gates.pii._entity_specs import CHECKSUM_CHANCE as _PRESIDIO_CHANCE

#: Chance that a random digit string passes the entity's checksum.
CHECKSUM_CHANCE: dict[str, float] = {"CREDIT_CARD": 0.1, "IBAN_CODE": 1 / 97, **_PRESIDIO_CHANCE, **_NATIONAL_CHANCE}
#: Below this many candidate cells a column is too small to call its matches coincidences.
MIN_CANDIDATES_FOR_CHANCE = 20


def coincidental(entity: str, candidates: int, valid: int) -> bool:
    """Whether ``valid`` checksum passes out of ``candidates`` are what random numbers would give.

    A column of random 16-digit references has about 10% Luhn-valid values; a
    card-number column has nearly 100%. Matches no more frequent than chance
    plus three standard deviations are coincidences (only judged from
    :data:`MIN_CANDIDATES_FOR_CHANCE` candidates on).
    """
    p = CHECKSUM_CHANCE.get(entity)
    if p is None or candidates < MIN_CANDIDATES_FOR_CHANCE:
        return False
    expected = p * candidates
    return valid <= expected + 3.0 * math.sqrt(candidates * p * (1.0 - p))


def luhn_valid(numbers: Sequence[str]) -> Any:
    """Vectorized Luhn check (numpy) of equal-or-mixed-length digit strings; same rule as Presidio's."""
    import numpy as np

    out = np.zeros(len(numbers), dtype=bool)
    if not len(numbers):
        return out
    lengths = np.fromiter((len(n) for n in numbers), dtype=np.int64, count=len(numbers))
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        raw = np.array([numbers[i] for i in idx], dtype=f"S{length}")
        digits = raw.view(np.uint8).reshape(len(idx), int(length)).astype(np.int64) - 48
        doubled = digits[:, -2::-2] * 2
        total = digits[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
        out[idx] = total % 10 == 0
    return out


def luhn_valid_arrow(values: Any) -> Any:
    """:func:`luhn_valid` on a pyarrow array of digit strings, reading Arrow's buffers directly."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = values.cast(pa.string()) if values.type != pa.string() else values
    out = np.zeros(len(values), dtype=bool)
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        part = values.take(pa.array(idx))  # contiguous: offsets start at 0, no nulls
        raw = np.frombuffer(part.buffers()[2], dtype=np.uint8)[: len(idx) * int(length)]
        digits = raw.reshape(len(idx), int(length)).astype(np.int64) - 48
        doubled = digits[:, -2::-2] * 2
        total = digits[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
        out[idx] = total % 10 == 0
    return out


@functools.lru_cache(maxsize=1)
def _nanp_tables() -> tuple:
    """python-phonenumbers' metadata for country code 1, in the order ``is_valid_number`` uses it."""
    from phonenumbers.phonemetadata import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    def desc(d: Any) -> tuple | None:
        if d is None or not d.national_number_pattern:
            return None
        return tuple(d.possible_length or ()), f"^(?:{d.national_number_pattern})$"

    tables = []
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        md = PhoneMetadata.metadata_for_region(region, None)
        if md is None:
            continue
        kinds = [md.premium_rate, md.toll_free, md.shared_cost, md.voip, md.personal_number, md.pager, md.uan,
                 md.voicemail, md.fixed_line, md.mobile]
        tables.append((region, f"^(?:{md.leading_digits})" if md.leading_digits else None, desc(md.general_desc),
                       tuple(t for t in (desc(k) for k in kinds) if t is not None)))
    return tuple(tables)


def nanp_valid(national: Any) -> Any:
    """``phonenumbers.is_valid_number`` for +1 numbers, vectorized with RE2 over their metadata.

    Args:
        national: pyarrow string array of 10-digit national numbers (country code 1).

    Returns:
        numpy bool array. Same rule as phonenumbers: the first region of country code 1 whose
        leading digits match (or, without leading digits, whose number types match) is the
        number's region, and the number is valid if it is a known type there.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def matches(values: Any, d: tuple | None) -> Any:
        if d is None or not len(values):
            return np.zeros(len(values), dtype=bool)
        possible, pattern = d
        ok = pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)
        if possible:
            ok &= np.isin(pc.utf8_length(values).to_numpy(zero_copy_only=False), possible)
        return ok

    def known_type(values: Any, general: tuple | None, kinds: tuple) -> Any:
        ok = matches(values, general)
        idx = np.flatnonzero(ok)
        if len(idx):
            sub = values.take(pa.array(idx))
            ok[idx] = np.logical_or.reduce([matches(sub, k) for k in kinds]) if kinds else False
        return ok

    n = len(national)
    valid = np.zeros(n, dtype=bool)
    undecided = np.ones(n, dtype=bool)
    for _region, leading, general, kinds in _nanp_tables():
        cand = np.flatnonzero(undecided)
        if not len(cand):
            break
        sub = national.take(pa.array(cand))
        if leading:
            chosen = cand[pc.match_substring_regex(sub, leading).to_numpy(zero_copy_only=False)]
            if len(chosen):
                valid[chosen] = known_type(national.take(pa.array(chosen)), general, kinds)
                undecided[chosen] = False
        else:
            ok = cand[known_type(sub, general, kinds)]
            valid[ok] = True
            undecided[ok] = False
    return valid


@functools.lru_cache(maxsize=1)
def _suffix_extractor() -> Any:
    """tldextract on its bundled public-suffix snapshot: never fetches the list (built once per process)."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=65536)
def has_fqdn(domain: str) -> bool:
    """Presidio's e-mail check (``tldextract(...).fqdn != ""``) on a domain."""
    return _suffix_extractor()(domain).fqdn != ""


def offline_email_recognizer(base: type) -> type:
    """Presidio's e-mail recognizer validating against tldextract's bundled suffix list.

    Presidio calls ``tldextract.extract``, which downloads the public-suffix list
    on first use (and logs a traceback when offline). Same check, no network.
    """
    class OfflineEmailRecognizer(base):  # type: ignore[misc, valid-type]
        def validate_result(self, pattern_text: str) -> bool:
            # tldextract drops the user part itself; caching on the domain makes whole columns cheap.
            return has_fqdn(pattern_text.rpartition("@")[2])

        @staticmethod
        def domain_valid(domain: str) -> bool:
            return has_fqdn(domain)

    return OfflineEmailRecognizer


# --- Presidio's digit validators over many values at once (Presidio's ``validate_result`` is the reference) ---
_PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)


def digit_matrix(values: Any) -> Any:
    """``(n, length)`` int64 digits of a pyarrow array of equal-length ASCII digit strings (Arrow's buffer)."""
    import numpy as np
    import pyarrow as pa

    values = values.cast(pa.string()) if values.type != pa.string() else values
    n = len(values)
    if not n:
        return np.zeros((0, 0), dtype=np.int64)
    values = pa.concat_arrays([values])  # offsets from 0, contiguous data
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + n + 1]
    length = int(offsets[1] - offsets[0])
    raw = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[0] + n * length]
    return raw.reshape(n, length).astype(np.int64) - 48


def pesel_check(mat: Any) -> Any:
    """Presidio's ``PlPeselRecognizer.validate_result`` on an ``(n, 11)`` digit matrix."""
    import numpy as np

    return (10 - (mat[:, :10] @ np.array(_PESEL_WEIGHTS)) % 10) % 10 == mat[:, 10]


def pesel_shape(mat: Any) -> Any:
    """Presidio's PESEL regex on an ``(n, 11)`` digit matrix: month ``[02468][1-9]|[13579][012]``, day 01-31."""
    m1, m2, d1, d2 = mat[:, 2], mat[:, 3], mat[:, 4], mat[:, 5]
    month = ((m1 % 2 == 0) & (m2 >= 1)) | ((m1 % 2 == 1) & (m2 <= 2))
    day = ((d1 == 0) & (d2 >= 1)) | (d1 == 1) | (d1 == 2) | ((d1 == 3) & (d2 <= 1))
    return month & day


def nhs_check(mat: Any) -> Any:
    """Presidio's ``NhsRecognizer.validate_result`` on an ``(n, 10)`` digit matrix (weights 10..1, mod 11)."""
    import numpy as np

    return (mat @ np.arange(10, 0, -1)) % 11 == 0


def luhn_check(mat: Any) -> Any:
    """Luhn (Presidio's ``CreditCardRecognizer.validate_result`` on bare digits) on an ``(n, L)`` digit matrix."""
    doubled = mat[:, -2::-2] * 2
    return (mat[:, -1::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)) % 10 == 0


def digit_run_may_validate(entity: str, mat: Any) -> Any | None:
    """Whether any match of the entity's Presidio pattern inside a cell made only of these digits could pass
    its validator (numpy bool per row), or ``None`` when the entity has no vectorized form here.

    ``False`` is exact: no reading of the cell as the entity survives Presidio's validator, so the
    cell need not reach Python for it. ``True`` may be wider (the cell is then validated one by one).
    """
    import numpy as np

    n, length = mat.shape
    if entity == "PL_PESEL":  # unanchored 11 digits: every window that has the pattern's shape
        out = np.zeros(n, dtype=bool)
        for i in range(length - 10):
            window = mat[:, i:i + 11]
            out |= pesel_shape(window) & pesel_check(window)
        return out
    if entity == "UK_NHS":  # \b-anchored 3-3-4 digits: a bare digit cell matches only with exactly 10
        return nhs_check(mat) if length == 10 else np.zeros(n, dtype=bool)
    if entity == "CREDIT_CARD":  # \b-anchored: the whole run, 13-19 digits, then Luhn
        return luhn_check(mat) if 12 <= length <= 19 else np.zeros(n, dtype=bool)
    return None


#: Entities :func:`digit_run_may_validate` covers.
DIGIT_RUN_ENTITIES = frozenset({"PL_PESEL", "UK_NHS", "CREDIT_CARD"})
