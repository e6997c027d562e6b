"""``aisec-settings``: the ``[aisec]`` configuration reference from the provider metadata.

The rows come from ``get_provider_info()["config"]`` (what ``airflow config list --section aisec``
shows), so a setting documented there is documented here, with the same description and default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aisec_nodes import table
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class SettingsDirective(SphinxDirective):
    """``.. aisec-settings::`` one table per config section of the provider."""

    has_content = False
    option_spec: ClassVar[dict] = {}

    def run(self) -> list[nodes.Node]:
        from airflow_aisec.get_provider_info import get_provider_info

        self.env.note_dependency(__file__)
        out: list[nodes.Node] = []
        for name, sect in get_provider_info().get("config", {}).items():
            rows = []
            for option, spec in sect.get("options", {}).items():
                env = f"AIRFLOW__{name.upper()}__{option.upper()}"
                default = spec.get("default")
                example = spec.get("example")
                text = spec.get("description", "")
                if spec.get("sensitive"):
                    text += " Sensitive: masked in the UI and in ``airflow config list``."
                if example:
                    text += f" Example: ``{example}``."
                rows.append([
                    nodes.literal(option, option),
                    spec.get("type", "string"),
                    f"``{default}``" if default not in (None, "") else "empty",
                    nodes.literal(env, env),
                    text,
                ])
            out.append(nodes.paragraph("", "", nodes.Text("Section "), nodes.literal(f"[{name}]", f"[{name}]"),
                                       nodes.Text(": " + sect.get("description", ""))))
            out.append(table(["Option", "Type", "Default", "Environment variable", "Description"], rows,
                             [16, 8, 10, 22, 44]))
        return out


def setup(app) -> dict[str, Any]:
    app.add_directive("aisec-settings", SettingsDirective)
    app.setup_extension("aisec_rules")  # the rule catalogue page (docs/reference/rules.md)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
