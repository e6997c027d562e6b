"""Registering secret values with the masker, and telling which values the masker cannot hide.

Functions that read secrets take a ``mask`` callable: ``airflow.sdk.log.mask_secret`` in tasks,
:func:`no_mask` in the CLI (which never prints a value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

GATE = "secrets"

#: Airflow's masker ignores shorter strings (``SecretsMasker.min_length_to_mask``), so such a value
#: could be logged in clear: the gate reports it unless the key is exempted by the policy.
MIN_MASKABLE_LENGTH = 5
#: Strings the masker never masks (``SECRETS_TO_SKIP_MASKING``).
UNMASKABLE_WORDS = frozenset({"airflow"})

Mask = Callable[[str], None]


def no_mask(_value: str) -> None:
    """Mask callable for contexts that never print values (the CLI)."""


def iter_leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) pairs of a secret's data."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from iter_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from iter_leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, data


def mask_values(data: Any, mask: Mask) -> list[str]:
    """Register every leaf value of ``data`` with the masker; return the keys that cannot be masked.

    Each value is registered on its own and without a name: ``mask_secret(dict)`` only masks
    values under sensitive-looking key names. Numbers are registered as text; booleans and
    nulls carry no secret.
    """
    unmaskable: list[str] = []
    for key, value in iter_leaves(data):
        if value is None or isinstance(value, bool):
            continue
        text = value if isinstance(value, str) else str(value)
        if not text:
            continue
        mask(text)
        if len(text) < MIN_MASKABLE_LENGTH or text.lower() in UNMASKABLE_WORDS:
            unmaskable.append(key)
    return unmaskable
