"""``aisec-json-schema``: a reference page generated from a pydantic JSON Schema.

``policy`` renders :func:`airflow_aisec.core.policy.policy_json_schema` (what ``aisec policy schema``
prints), ``result`` the result contract (:func:`airflow_aisec.core.result.result_json_schema`). Every
``$defs`` entry becomes one section (in the order the document reaches them) with a table of its
fields: type (linked to the section of a nested object), default, constraints and the description
from the model's ``Attributes:`` docstring.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from aisec_nodes import docstring_blocks, section, table
from docutils import nodes
from sphinx.util.docutils import SphinxDirective

_CONSTRAINTS = {
    "minimum": ">= {}", "maximum": "<= {}", "exclusiveMinimum": "> {}", "exclusiveMaximum": "< {}",
    "minLength": "length >= {}", "maxLength": "length <= {}", "minItems": "items >= {}",
    "maxItems": "items <= {}", "pattern": "matches {}", "format": "format {}", "uniqueItems": "unique",
}
# Used only while the top-level model's docstring has no ``Attributes:`` entry for the field.
_DOCUMENT_FIELDS = {
    "version": "Policy format version (only 1 exists).",
    "name": "Policy name, shown in every result next to the policy's sha256.",
    "description": "Free text for people.",
    "enforcement": "Default level of every rule: ``enforce`` | ``warn`` | ``audit``.",
    "rules": "Per-rule overrides of the level, by rule id or glob (the most specific wins).",
    "waivers": "Approved, scoped, expiring exceptions.",
}
_ATTR = re.compile(r"^    (\w+)(?: \([^)]*\))?: ?(.*)$")


def load_schema(name: str) -> dict[str, Any]:
    if name == "policy":
        from airflow_aisec.core.policy import policy_json_schema

        return policy_json_schema()
    if name == "result":
        from airflow_aisec.core.result import result_json_schema

        return result_json_schema()
    raise ValueError(f"unknown schema {name!r} (policy or result)")


def split_docstring(text: str) -> tuple[str, dict[str, str]]:
    """(summary, field -> description) from a Google-style ``Attributes:`` section."""
    summary, _, attrs = text.partition("\nAttributes:\n")
    fields: dict[str, str] = {}
    current = None
    for line in attrs.splitlines():
        match = _ATTR.match(line)
        if match:
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current and line.startswith("        "):
            fields[current] += " " + line.strip()
        elif line.strip():
            current = None  # a later section (Example:, Raises:...) ends the attributes
    return summary.strip(), fields


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None


def references(schema: Any) -> list[str]:
    """Every ``$defs`` name ``schema`` refers to, in document order."""
    found: list[str] = []
    if isinstance(schema, dict):
        name = ref_name(schema)
        if name:
            found.append(name)
        for value in schema.values():
            found.extend(references(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(references(value))
    return found


class JsonSchemaDirective(SphinxDirective):
    """``.. aisec-json-schema:: policy|result``"""

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict] = {}

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(__file__)
        which = self.arguments[0]
        schema = load_schema(which)
        defs: dict[str, dict[str, Any]] = schema.get("$defs", {})
        self.prefix = f"{which}-schema-"
        order = [None, *dict.fromkeys(references({k: v for k, v in schema.items() if k != "$defs"}))]
        # a top-level field holding one object type titles that type's section (``pii`` section)
        self.sections = {name: field for field, prop in schema.get("properties", {}).items()
                         for name in [ref_name(prop) or next(filter(None, map(ref_name, prop.get("anyOf", []))), None)]
                         if name and "properties" in defs.get(name, {})}
        seen: set[str | None] = set()
        out: list[nodes.Node] = []
        while order:
            name = order.pop(0)
            if name in seen:
                continue
            seen.add(name)
            model = schema if name is None else defs[name]
            out.append(self._model_section(name or schema.get("title", which), model, which))
            order.extend(n for n in dict.fromkeys(references(model)) if n not in seen)
        return out

    def _anchor(self, name: str) -> str:
        return self.prefix + name.lower()

    def _model_section(self, name: str, model: dict[str, Any], which: str) -> nodes.section:
        field = self.sections.get(name)
        title = [nodes.literal(field, field), nodes.Text(f" section ({name})")] if field else name
        sect = section(self.state.document, title, self._anchor(name))
        summary, attrs = split_docstring(model.get("description", ""))
        if "$defs" in model:  # the document itself
            attrs = {**(_DOCUMENT_FIELDS if which == "policy" else {}),
                     **{f: f"The ``{f}`` gate's section (absent: the gate refuses to run)."
                        for f in self.sections.values()}, **attrs}
        sect.extend(docstring_blocks(summary))
        if "enum" in model:
            values = ", ".join(json.dumps(v) for v in model["enum"])
            sect += nodes.paragraph("", "", nodes.Text("One of: "), nodes.literal(values, values))
            return sect
        properties: dict[str, Any] = model.get("properties", {})
        if not properties:
            return sect
        required = set(model.get("required", []))
        rows = []
        for field, prop in properties.items():
            rows.append([
                nodes.literal(field, field),
                self._type(prop),
                "required" if field in required else self._default(prop),
                ", ".join(_CONSTRAINTS[k].format(json.dumps(v) if k == "pattern" else v)
                          for k, v in prop.items() if k in _CONSTRAINTS),
                prop.get("description") or attrs.get(field, ""),
            ])
        extra = model.get("additionalProperties", True)
        sect += table(["Field", "Type", "Default", "Constraints", "Description"], rows, [14, 16, 10, 12, 48])
        if extra is False:
            sect += nodes.paragraph(text="Unknown keys are errors.")
        return sect

    @staticmethod
    def _default(prop: dict[str, Any]) -> str:
        if "default" not in prop:
            return "empty" if prop.get("type") in ("array", "object") else "computed"
        value = prop["default"]
        return "``" + json.dumps(value) + "``"

    def _type(self, prop: dict[str, Any]) -> list[nodes.Node]:
        name = ref_name(prop)
        if name:
            ref = nodes.reference("", "", internal=True, refid=nodes.make_id(self._anchor(name)))
            ref += nodes.literal(name, name)
            return [ref]
        if "anyOf" in prop:
            parts = [p for p in prop["anyOf"] if p.get("type") != "null"]
            out: list[nodes.Node] = []
            for i, part in enumerate(parts):
                if i:
                    out.append(nodes.Text(" | "))
                out.extend(self._type(part))
            if len(parts) < len(prop["anyOf"]):
                out.append(nodes.Text(" or null"))
            return out
        if "enum" in prop or "const" in prop:
            values = prop.get("enum", [prop.get("const")])
            text = " | ".join(json.dumps(v) for v in values)
            return [nodes.literal(text, text)]
        kind = prop.get("type")
        if isinstance(kind, list):
            return [nodes.Text(" | ".join(kind))]
        if kind == "array":
            return [nodes.Text("list of "), *self._type(prop.get("items", {}))]
        if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
            return [nodes.Text("mapping of string to "), *self._type(prop["additionalProperties"])]
        return [nodes.Text(kind or "any")]


def setup(app) -> dict[str, Any]:
    app.add_directive("aisec-json-schema", JsonSchemaDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
