"""``aisec-rules``: every rule id a gate can emit, per gate, from the rule catalogue (``core/rules.py``).

Loaded by ``aisec_settings`` (``app.setup_extension``), so ``conf.py`` needs no change. The rows are
the catalogue's fixed rules and the members of its families (``bias.<metric>`` lists every metric the
bias policy section allows), then the open families whose names come from the policy.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aisec_nodes import table
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class RulesDirective(SphinxDirective):
    """``.. aisec-rules::`` one table per gate: rule id, always evaluated, family, description."""

    has_content = False
    option_spec: ClassVar[dict] = {}

    def run(self) -> list[nodes.Node]:
        from airflow_aisec.core.rules import ANY_GATE, GATE_DESCRIPTIONS, catalogue, families

        self.env.note_dependency(__file__)
        out: list[nodes.Node] = []
        rules = list(catalogue().values())
        open_families = [f for f in families() if f.members is None]
        for gate, what in GATE_DESCRIPTIONS.items():
            rows: list[list[Any]] = [
                [nodes.literal(r.id, r.id), "yes" if r.always else "",
                 nodes.literal(r.family, r.family) if r.family else "", r.description]
                for r in rules if r.gate == gate
            ]
            rows += [[nodes.literal(f.pattern, f.pattern), "", "open (names from the policy)", f.description]
                     for f in open_families if f.gate == gate]
            if not rows:
                continue
            out.append(nodes.rubric("", "", nodes.literal(gate, gate), nodes.Text(f": {what}")))
            out.append(table(["Rule id", "Always", "Family", "Description"], rows, [30, 7, 18, 45]))
        generic = [f for f in open_families if f.gate == ANY_GATE]
        if generic:
            out.append(nodes.rubric("", "Any gate"))
            out.append(table(["Rule id", "Always", "Family", "Description"],
                             [[nodes.literal(f.pattern, f.pattern), "", "open", f.description] for f in generic],
                             [30, 7, 18, 45]))
        return out


def setup(app) -> dict[str, Any]:
    app.add_directive("aisec-rules", RulesDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
