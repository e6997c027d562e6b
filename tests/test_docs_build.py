"""The documentation builds with every warning an error, and its generated parts cover the code.

``scripts/docs.sh`` is run as CI runs it (Sphinx ``-W --keep-going -n -j 1``, offline). The policy, CLI,
result and settings references are generated at build time, so the checks here compare the built
pages with the code they come from: a new CLI verb, policy type or setting missing from the pages
fails this test, and so does a how-to whose ``literalinclude`` marker disappeared from a DAG (Sphinx
warns, the build fails).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.env import REPO

DOCS = REPO / "docs"
SCRIPT = REPO / "scripts" / "docs.sh"
MARKER = re.compile(r"#\s*\[(START|END) (howto_\w+)\]")
GATES = ("source", "pii", "secrets", "signing", "model_scan", "bias", "drift", "platform",
         "prompt_injection", "llm_redteam", "endpoint", "storage")

pytestmark = pytest.mark.timeout(300)


def run_docs(out: Path, *, src: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": str(REPO / ".venv" / "bin" / "python")}
    if src is not None:
        env["AISEC_DOCS_SRC"] = str(src)
    return subprocess.run([str(SCRIPT), str(out)], check=False, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=280)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = run_docs(out)
    assert proc.returncode == 0, f"docs build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-4000:]
    return out


def page(built: Path, name: str) -> str:
    return (built / name).read_text(encoding="utf-8")


def ids(text: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', text))


def test_every_page_is_built_and_reachable(built):
    sources = sorted(p.relative_to(DOCS).with_suffix(".html") for p in DOCS.rglob("*.md")
                     if "_build" not in p.parts)
    assert len(sources) >= 20
    for rel in sources:
        assert (built / rel).is_file(), rel
    index = page(built, "index.html")
    for rel in ("getting-started.html", "howto/index.html", "reference/policy.html", "reference/cli.html",
                "reference/result.html", "security-model.html", "operations/index.html"):
        assert f'href="{rel}' in index, rel


def test_cli_reference_lists_every_verb_and_option(built):
    from airflow_aisec.cli.app import build_parser

    text = page(built, "reference/cli.html")
    anchors = ids(text)
    verbs = 0

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        nonlocal verbs
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            verbs += 1
            assert "cli-" + "-".join(path) in anchors, path
            for action in parser._actions:
                for option in action.option_strings:
                    if option not in ("-h", "--help"):
                        assert html.escape(option) in text, (path, option)
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, [*path, name])

    walk(build_parser(None), [])
    assert verbs >= 20


@pytest.mark.parametrize("which", ["policy", "result"])
def test_schema_reference_has_a_section_per_type(built, which):
    if which == "policy":
        from airflow_aisec.core.policy import policy_json_schema as schema_of
    else:
        from airflow_aisec.core.result import result_json_schema as schema_of
    schema = schema_of()
    text = page(built, f"reference/{which}.html")
    anchors = ids(text)
    for name, model in schema["$defs"].items():
        assert f"{which}-schema-{name.lower()}" in anchors, name
        for field in model.get("properties", {}):
            assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{field}</span></code>" in text, \
                (name, field)
    assert f"{which}-schema-{schema['title'].lower()}" in anchors


def test_settings_reference_matches_provider_metadata(built):
    from airflow_aisec.get_provider_info import get_provider_info

    text = page(built, "operations/settings.html")
    options = get_provider_info()["config"]["aisec"]["options"]
    assert len(options) >= 10
    for option in options:
        assert f"AIRFLOW__AISEC__{option.upper()}" in text, option


def test_every_gate_has_a_howto_with_included_code(built):
    howto = page(built, "howto/index.html")
    for gate in GATES:
        name = gate.replace("_", "-")
        text = page(built, f"howto/{name}.html")
        assert f'href="{name}.html"' in howto, gate
        assert 'class="highlight-python' in text, f"{gate}: no code included from a DAG"
        assert "Operator(" in text or "Operator</span><span" in text, gate
        assert f"policy-schema-{gate.replace('_', '')}policy" in text, f"{gate}: no link to its policy fields"


def test_howto_code_comes_from_the_dags_by_marker():
    """Every marker is paired and used by a page, and every page's marker exists (no copied code)."""
    defined: dict[str, list[str]] = {}
    for path in [*sorted((REPO / "dags").glob("*.py")), *sorted((DOCS / "examples").glob("*.py"))]:
        for kind, name in MARKER.findall(path.read_text()):
            defined.setdefault(name, []).append(kind)
    assert all(kinds == ["START", "END"] for kinds in defined.values()), defined
    used = set()
    for md in DOCS.rglob("*.md"):
        used |= set(re.findall(r"\[START (howto_\w+)\]", md.read_text()))
        assert "```python\n" not in md.read_text(), f"{md}: include code from a DAG file, do not copy it"
    assert used == set(defined), (sorted(used ^ set(defined)))
    assert len(used) >= 14


def test_docs_example_dag_parses():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DOCS / "examples"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["model_release_gates"]
    assert {"model_bucket_posture", "redteam_candidate", "bias_gate", "bias_waiver", "promote"} <= set(dag.task_ids)
    assert dag.get_task("promote").upstream_task_ids == {"model_bucket_posture", "redteam_candidate", "bias_waiver"}


def test_warning_fails_the_build(tmp_path):
    """The build really is ``-W``: a how-to whose marker vanished from the DAG fails it, naming the page."""
    src = tmp_path / "src"
    shutil.copytree(DOCS, src / "docs", ignore=shutil.ignore_patterns("_build"))
    for name in ("dags", "policies", "README.md"):
        (src / name).symlink_to(REPO / name)
    page_md = src / "docs" / "howto" / "drift.md"
    page_md.write_text(page_md.read_text().replace("[START howto_drift_gate]", "[START howto_gone]"))
    proc = run_docs(tmp_path / "html", src=src / "docs")
    assert proc.returncode != 0
    assert "drift.md" in proc.stderr and "howto_gone" in proc.stderr, proc.stderr[-2000:]


def test_readme_links_the_docs_and_keeps_its_two_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    assert "scripts/docs.sh" in readme and "docs/security-model.md" in readme
