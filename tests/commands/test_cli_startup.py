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


def imported(*argv: str) -> tuple[int, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120,
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
