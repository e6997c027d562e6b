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
         "picklescan", "scipy", "spacy")


def _run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_core_never_imports_airflow_or_heavy_libraries():
    modules = [m.name for m in pkgutil.iter_modules(airflow_aisec.core.__path__, "airflow_aisec.core.")]
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
    out = subprocess.run([str(BIN / "airflow"), "providers", "list", "-o", "json"], capture_output=True,
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
    out = subprocess.run([str(BIN / "airflow"), "plugins", "-o", "json"], capture_output=True, text=True,
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
