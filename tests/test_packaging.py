"""Packaging contracts: provider discovery, core isolation from Airflow, lazy heavy imports."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_aisec.core

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEAVY = ("great_expectations", "presidio_analyzer", "model_signing", "fairlearn", "sklearn", "modelscan",
         "picklescan", "scipy", "spacy", "hvac")


def _run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_core_never_imports_airflow_or_heavy_libraries():
    modules = [m.name for m in pkgutil.walk_packages(airflow_aisec.core.__path__, "airflow_aisec.core.")]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import airflow_aisec.cli, airflow_aisec.exceptions\n"
        "print(json.dumps(sorted(k for k in sys.modules)))\n"
    )
    loaded = set(json.loads(_run_python(code)))
    assert not any(m == "airflow" or m.startswith("airflow.") for m in loaded)
    assert not [m for m in HEAVY if m in loaded]


def test_operator_modules_keep_heavy_libraries_lazy():
    import airflow_aisec.operators
    import airflow_aisec.sensors

    mods = [m.name for pkg in (airflow_aisec.operators, airflow_aisec.sensors)
            for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + ".")]
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules)))\n"
    )
    loaded = set(json.loads(_run_python(code)))
    assert not [m for m in HEAVY if m in loaded]


@pytest.mark.integration
def test_airflow_providers_list_shows_the_package(airflow_db):
    out = subprocess.run([str(BIN / "airflow"), "providers", "list", "-o", "json"], check=False, capture_output=True,
                         text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    providers = {p["package_name"]: p for p in json.loads(out.stdout[out.stdout.index("["):])}
    assert "airflow-aisec" in providers
    assert providers["airflow-aisec"]["version"] == airflow_aisec_version()


def airflow_aisec_version() -> str:
    import airflow_aisec

    return airflow_aisec.__version__


@pytest.mark.integration
def test_plugin_is_registered_through_entry_point(airflow_db):
    out = subprocess.run([str(BIN / "airflow"), "plugins", "-o", "json"], check=False, capture_output=True, text=True,
                         timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert '"aisec"' in out.stdout


def test_lock_file_pins_every_requirement():
    lines = [line.strip() for line in (REPO / "requirements.lock").read_text().splitlines()
             if line.strip() and not line.startswith(("#", " "))]
    assert lines and all("==" in line for line in lines)
    pinned = {line.split("==")[0].lower() for line in lines}
    for name in ("apache-airflow", "model-signing", "pyopenssl", "presidio-analyzer", "great-expectations",
                 "fairlearn", "hvac", "boto3", "pydantic"):
        assert name in pinned, name


def _package_sources() -> dict[str, str]:
    root = REPO / "airflow_aisec"
    return {str(p.relative_to(REPO)): p.read_text() for p in sorted(root.rglob("*.py"))}


def test_aisec_section_is_read_only_by_settings():
    """``[aisec]`` has one reader, airflow_aisec/settings.py: no other module calls the config parser
    with the section or looks at ``AIRFLOW__AISEC__*`` environment variables."""
    import re

    reader = re.compile(r"""\.(get\w*|has_option|items|getsection)\(\s*["']aisec["']""")
    offenders = {
        path: [line.strip() for line in text.splitlines() if reader.search(line) or "AIRFLOW__AISEC__" in line]
        for path, text in _package_sources().items()
        if path != "airflow_aisec/settings.py"
    }
    assert {p: lines for p, lines in offenders.items() if lines} == {}
    settings_src = (REPO / "airflow_aisec" / "settings.py").read_text()
    assert "conf" in settings_src and "SECTION" in settings_src  # the grep above looks at the right thing


def test_plugins_never_import_the_operators():
    """The UI plugin and the operators share airflow_aisec.links / constants / settings, not each other."""
    import ast

    bad = []
    for path, text in _package_sources().items():
        if not path.startswith("airflow_aisec/plugins/"):
            continue
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [(path, n) for n in names if n == "airflow_aisec.operators" or n.startswith("airflow_aisec.operators.")]
    assert bad == []
