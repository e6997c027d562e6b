"""Validating SARIF logs against the official SARIF 2.1.0 schema and JUnit XML against junit-10.xsd
(both vendored under tests/data, see the SOURCE.md files next to them)."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from tests.helpers.env import REPO

SARIF_SCHEMA = REPO / "tests" / "data" / "sarif-schema-2.1.0.json"
JUNIT_XSD = REPO / "tests" / "data" / "junit-10.xsd"

# RFC 3986: a URI reference holds only unreserved, reserved and percent-encoded characters.
_URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@functools.cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = jsonschema.FormatChecker()
    # jsonschema checks "uri" only with an optional package; these are RFC 3986's rules, strictly.
    checker.checks("uri")(lambda v: not isinstance(v, str) or bool(_URI_CHARS.match(v) and _SCHEME.match(v)))
    checker.checks("uri-reference")(lambda v: not isinstance(v, str) or bool(_URI_CHARS.match(v)))
    return cls(schema, format_checker=checker)


def sarif_errors(doc: Any) -> list[str]:
    """Every schema violation of a SARIF log (empty when it is valid SARIF 2.1.0)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(doc)]


def assert_valid_sarif(doc: Any) -> dict[str, Any]:
    errors = sarif_errors(doc)
    assert not errors, errors[:10]
    return doc


@functools.cache
def _junit_schema() -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(JUNIT_XSD)))


def junit_errors(data: bytes) -> list[str]:
    """Violations of junit-10.xsd (parsing errors raise)."""
    from lxml import etree

    schema = _junit_schema()
    ok = schema.validate(etree.fromstring(data))
    return [] if ok else [str(e) for e in schema.error_log]
