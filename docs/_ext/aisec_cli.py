"""``aisec-cli``: the ``aisec`` command reference generated from its argument parser.

``airflow_aisec.cli.app.build_parser()`` imports every command module only when it is called without
a noun (start-up imports one); called so, it is the full parser. Each verb becomes a section with its
usage line and a table of its arguments, so a new option shows up here without editing the docs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, ClassVar

from aisec_nodes import docstring_blocks, section, table
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def full_parser() -> argparse.ArgumentParser:
    from airflow_aisec.cli.app import build_parser

    return build_parser(None)


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of every sub-command, in registration order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            out.extend((name, helps.get(name, ""), sub) for name, sub in action.choices.items())
    return out


def arguments(parser: argparse.ArgumentParser) -> list[list[Any]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (action.dest.upper() if not action.choices else None)
                names += " " + (metavar if isinstance(metavar, str) else "{" + ",".join(map(str, action.choices or ())) + "}")
        else:
            names = action.metavar if isinstance(action.metavar, str) else action.dest
            if action.nargs in ("+", "*"):
                names += "..."
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else repr(default)
        text = (action.help or "") % {"default": default, "prog": parser.prog, "dest": action.dest} \
            if action.help and "%(" in action.help else (action.help or "")
        if action.choices and not action.option_strings:
            text += f" (one of {', '.join(map(str, action.choices))})"
        rows.append([nodes.literal(names, names), "required" if action.required or
                     (not action.option_strings and action.nargs not in ("?", "*")) else shown, text])
    return rows


class CliDirective(SphinxDirective):
    """``.. aisec-cli::`` renders every ``aisec`` verb."""

    has_content = False
    option_spec: ClassVar[dict] = {}

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(__file__)
        os.environ["COLUMNS"] = "100"  # argparse wraps usage at the terminal width: keep pages stable
        parser = full_parser()
        out: list[nodes.Node] = []
        for noun, noun_help, noun_parser in subcommands(parser):
            sect = section(self.state.document, f"aisec {noun}", f"cli-{noun}")
            sect += nodes.paragraph(text=noun_help[:1].upper() + noun_help[1:] + ".")
            verbs = subcommands(noun_parser)
            if not verbs:
                self._verb(sect, noun_parser)
            for verb, verb_help, verb_parser in verbs:
                sub = section(self.state.document, f"aisec {noun} {verb}", f"cli-{noun}-{verb}")
                sub += nodes.paragraph(text=verb_help[:1].upper() + verb_help[1:] + ".")
                self._verb(sub, verb_parser)
                sect += sub
            out.append(sect)
        return out

    @staticmethod
    def _verb(sect: nodes.section, parser: argparse.ArgumentParser) -> None:
        lines = parser.format_usage().removeprefix("usage: ").rstrip().splitlines()
        # continuation lines are indented under the prefix just removed
        usage = "\n".join([lines[0], *(line.removeprefix(" " * len("usage: ")) for line in lines[1:])])
        sect += nodes.literal_block(usage, usage, language="text")
        if parser.description:
            sect.extend(docstring_blocks(parser.description))
        rows = arguments(parser)
        if rows:
            sect += table(["Argument", "Default", "Meaning"], rows, [30, 14, 56])
        if parser.epilog:
            sect.extend(docstring_blocks(parser.epilog))


def setup(app) -> dict[str, Any]:
    app.add_directive("aisec-cli", CliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
