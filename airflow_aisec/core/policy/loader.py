"""Read a policy file: bounded, strict YAML (no duplicate keys, no alias bombs), then the schema.

A missing or unreadable policy is an error; so is anything that does not validate.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from airflow_aisec.core.io.expansion import within_values
from airflow_aisec.core.io.files import read_user_file
from airflow_aisec.core.policy.document import LoadedPolicy, Policy
from airflow_aisec.exceptions import PolicyError

#: Largest policy file accepted: a policy is hand-written text, not data.
MAX_POLICY_BYTES = 1024 * 1024
#: Most values (mapping keys and values, list items) a policy may hold once YAML aliases are expanded:
#: more than any alias-free document within MAX_POLICY_BYTES, far less than an alias bomb.
MAX_POLICY_VALUES = 1_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (a silent override is a typo waiting to happen)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping key is not hashable", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

#: The same loader over libyaml's parser (10x faster: ~10 ms of every ``aisec`` process), when PyYAML has it.
#: Only a document that loads cleanly is taken from it: any error is reported by re-reading with the Python
#: parser, so messages (line, column, problem) are always the same.
_FastUniqueKeyLoader: type | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastUniqueKeyLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """:class:`_UniqueKeyLoader` on libyaml."""

    _FastUniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str) -> Any:
    if _FastUniqueKeyLoader is not None:
        try:
            return yaml.load(text, Loader=_FastUniqueKeyLoader)
        except (yaml.YAMLError, RecursionError, ValueError, TypeError):
            pass  # the Python parser below raises the error, worded as always
    return yaml.load(text, Loader=_UniqueKeyLoader)


def _check_expanded_size(document: Any, source: str) -> None:
    """Refuse a document whose aliases expand it beyond :data:`MAX_POLICY_VALUES` values (or forever).

    PyYAML shares an aliased node instead of copying it, but validation walks every reference:
    counting references before they are followed keeps the walk itself bounded.
    """
    if not within_values(document, MAX_POLICY_VALUES):
        raise PolicyError(
            f"policy expands to more than {MAX_POLICY_VALUES} values (YAML aliases repeating large or "
            "recursive parts?)", source=source,
        )


_YAML_TYPE_NAMES = {bool: "a boolean", str: "a string", float: "a floating-point number", int: "an integer",
                    list: "a list", dict: "a mapping", type(None): "null"}


def _format_validation_error(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=True)
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown key (not in the policy schema)"
    elif first.get("type") in ("int_type", "float_type", "bool_type") and "not a" not in message:
        # Name the YAML type that was given (never the value): `true` and `"30"` are not numbers.
        given = _YAML_TYPE_NAMES.get(type(first.get("input")))
        if given:
            message += f", not {given}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return field, message


def parse_policy(data: bytes, source: str = "<policy>") -> LoadedPolicy:
    """Validate raw policy bytes.

    Args:
        data: The file content.
        source: Name used in error messages and recorded in results.

    Returns:
        The validated policy with its sha256.

    Raises:
        PolicyError: for anything that is not a valid policy.
    """
    if not data or not data.strip():
        raise PolicyError("policy is empty", source=source)
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes", source=source)
    if b"\x00" in data:
        raise PolicyError("policy is a binary file, expected YAML text", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("policy is not UTF-8 text", source=source) from None
    try:
        document = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(f"{where}malformed YAML: {exc.problem or exc.context}", source=source) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise PolicyError(f"malformed YAML: {type(exc).__name__}", source=source) from None
    if not isinstance(document, dict):
        kind = "empty document" if document is None else f"a YAML {type(document).__name__}"
        raise PolicyError(f"policy must be a YAML mapping, got {kind}", source=source)
    _check_expanded_size(document, source)
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        field, message = _format_validation_error(exc)
        raise PolicyError(message, source=source, field=field) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise PolicyError(f"invalid policy: {type(exc).__name__}", source=source) from None
    return LoadedPolicy(policy=policy, sha256=hashlib.sha256(data).hexdigest(), source=source)


def load_policy(path: str | os.PathLike[str]) -> LoadedPolicy:
    """Load and validate a policy file.

    Raises:
        PolicyError: the path is missing, unreadable, not a regular file, larger than
            :data:`MAX_POLICY_BYTES`, or not a valid policy.
    """
    if path is None or str(path).strip() == "":
        raise PolicyError("no policy given; gates refuse to run without a policy")
    p = Path(path)
    # Bounded and refusing FIFOs, devices, sockets, directories and symlink loops before any read.
    data = read_user_file(p, limit=MAX_POLICY_BYTES, what="policy file", error=PolicyError)
    return parse_policy(data, source=str(p))


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of the policy format (what ``aisec policy schema`` prints)."""
    return Policy.model_json_schema()
