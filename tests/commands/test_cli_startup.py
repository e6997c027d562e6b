"""``aisec`` imports only what the chosen verb needs, and ``--help`` still lists every command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_aisec.cli.app import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "pandas", "numpy", "boto3", "botocore", "hvac", "presidio_analyzer", "model_signing",
         "great_expectations", "scipy", "sklearn", "fairlearn", "modelscan", "picklescan", "requests", "airflow")

PROBE = """
import json, sys
from airflow_aisec.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help, --version
    code = exc.code
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted({m.split('.')[0] for m in sys.modules})}), file=sys.stderr)
"""


def imported(*argv: str, full: bool = False) -> tuple[int, set[str]]:
    """Exit code of ``aisec ARGV`` and the modules it imported (top-level names, or all with ``full``)."""
    probe = PROBE.replace("{m.split('.')[0] for m in sys.modules}", "set(sys.modules)") if full else PROBE
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120,
                         check=False, cwd=REPO, stdin=subprocess.DEVNULL)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", [
    ("policy", "validate", "policies/strict.yaml", "policies/pii-example.yaml"),
    ("policy", "schema"),
    ("--version",),
    ("--help",),
])
def test_light_verbs_import_no_heavy_library(argv):
    code, modules = imported(*argv)
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


#: What ``aisec pii scan`` must not import when the policy asks for no NLP model (``pii.nlp``): Presidio's
#: NLP engines and what they drag (spaCy, thinc, torch), and the ML libraries of other gates. On a table whose
#: cells hold no e-mail or URL candidate and no free text, neither the e-mail recognizer (tldextract, requests)
#: nor the URL one (a huge regex compiled at import) nor Faker's name lists are loaded.
PII_SCAN_NEVER = ("pandas", "pyarrow.dataset", "spacy", "thinc", "torch", "transformers", "stanza", "sklearn", "scipy",
                  "presidio_analyzer.analyzer_engine", "presidio_analyzer.nlp_engine.nlp_artifacts",
                  "presidio_analyzer.recognizer_registry", "tldextract", "requests", "faker",
                  "presidio_analyzer.predefined_recognizers.generic.url_recognizer",
                  "presidio_analyzer.predefined_recognizers.generic.email_recognizer")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("module", PII_SCAN_NEVER)
def test_pii_scan_of_a_one_row_table_imports_no_nlp_stack(module, tmp_path_factory):
    data = tmp_path_factory.getbasetemp() / "one_row.csv"
    if not data.exists():
        data.write_text("id,amount,city\n1,9.5,Lyon\n")  # as bench/bench_cli_startup.py
    code, modules = _pii_scan_modules(str(data))
    assert code == 0
    assert module not in modules
    assert "presidio_analyzer.predefined_recognizers.country_specific.us.us_ssn_recognizer" in modules  # Presidio ran


@pytest.mark.timeout(300)
def test_pii_scan_loads_the_email_and_url_recognizers_when_a_cell_needs_them(tmp_path):
    data = tmp_path / "contact.csv"
    data.write_text("id,contact\n1,ana@example.org see https://example.org/a\n")
    out = subprocess.run([sys.executable, "-c", PROBE, "pii", "scan", str(data), "--policy", "policies/strict.yaml"],
                         capture_output=True, text=True, timeout=300, check=False, cwd=REPO, stdin=subprocess.DEVNULL)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    assert report["code"] == 1  # the strict policy forbids both in a public dataset
    assert "tldextract" in report["modules"]
    assert "carries EMAIL_ADDRESS" in out.stdout and "carries URL" in out.stdout


_PII_SCANS: dict[str, tuple[int, set[str]]] = {}


def _pii_scan_modules(data: str) -> tuple[int, set[str]]:
    """One scan per data file for every parameter (a process start costs seconds on a loaded machine)."""
    if data not in _PII_SCANS:
        _PII_SCANS[data] = imported("pii", "scan", data, "--policy", "policies/strict.yaml", full=True)
    return _PII_SCANS[data]


@pytest.mark.timeout(120)
def test_help_lists_every_command_without_importing_them():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "airflow_aisec.cli.app", "--help"],
                         capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert out.returncode == 0
    for name, text in COMMANDS.items():
        assert name in out.stdout and text.split()[0] in out.stdout
    assert "airflow_aisec.cli.commands." not in out.stderr  # -X importtime lists every import


def test_command_table_matches_the_modules():
    """COMMANDS holds each module's help text, so `aisec --help` says what the module says."""
    parser = build_parser()  # every module, as before
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registered = {c.dest: c.help for c in sub._choices_actions}
    assert registered == COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_noun_parses_with_only_its_module(name):
    parser = build_parser(name)
    with pytest.raises(SystemExit) as info:
        parser.parse_args([name, "--help"])
    assert info.value.code == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("preset", "expected"), [(None, "__all__"), ("", ""), ("logfire", "logfire")])
def test_the_console_script_turns_pydantic_plugins_off_unless_the_environment_says(preset, expected):
    import os

    probe = ("import os, sys\nfrom airflow_aisec.cli.app import main\nsys.argv = ['aisec', 'policy', 'schema']\n"
             "try:\n    main()\nfinally:\n    print(repr(os.environ.get('PYDANTIC_DISABLE_PLUGINS')), file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False,
                         cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == repr(expected)
