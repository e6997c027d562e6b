"""Provider metadata (``get_provider_info``) against the code it describes.

* it validates against Airflow's own provider_info JSON schema;
* every ``[aisec]`` option settings.py reads is declared, with description, default, type and example,
  and nothing is declared that settings.py does not read;
* every module listed for operators, sensors, triggers and hooks imports, and every module of the
  package that defines such a class is listed; every extra link, notifier and plugin class imports
  and is what it claims to be;
* ``airflow config list --section aisec --include-descriptions`` shows every option with its description.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
from pathlib import Path

import pytest

import airflow_aisec
from airflow_aisec.get_provider_info import get_provider_info

PACKAGE = Path(airflow_aisec.__file__).parent
BIN = Path(os.environ.get("VIRTUAL_ENV", PACKAGE.parent / ".venv")) / "bin"
INFO = get_provider_info()
OPTIONS = INFO["config"]["aisec"]["options"]


def _settings_reads() -> set[str]:
    """Option names settings.py reads: literal first arguments of its ``_get`` / ``_list`` calls."""
    tree = ast.parse((PACKAGE / "settings.py").read_text())
    reads = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_get", "_list")
                and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                reads.add(arg.value)
    return reads


def _listed(kind: str) -> list[str]:
    return [m for entry in INFO.get(kind, []) for m in entry["python-modules"]]


def _modules_defining(subpackage: str, base: type) -> set[str]:
    """Modules of ``airflow_aisec.<subpackage>`` defining a public subclass of ``base`` themselves
    (gate base classes, whose ``gate`` is still empty, do not count)."""
    found = set()
    pkg = importlib.import_module(f"airflow_aisec.{subpackage}")
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for name in dir(module):  # dir(), not vars(): a module may build a class lazily (module __getattr__)
            obj = getattr(module, name)
            if (inspect.isclass(obj) and issubclass(obj, base) and obj.__module__ == module.__name__
                    and not name.startswith("_") and not inspect.isabstract(obj)
                    and getattr(obj, "gate", None) != ""):
                found.add(module.__name__)
    return found


def test_metadata_validates_against_airflows_schema():
    import jsonschema

    schema_path = Path(importlib.import_module("airflow").__file__).parent / "provider_info.schema.json"
    jsonschema.validate(INFO, json.loads(schema_path.read_text()))
    assert INFO["state"] == "ready"
    assert INFO["versions"][0] == airflow_aisec.__version__


def test_every_setting_read_by_settings_is_declared_and_documented():
    reads = _settings_reads()
    assert len(reads) >= 10  # the parser found the reads
    assert reads == set(OPTIONS), {"read, not declared": reads - set(OPTIONS),
                                   "declared, never read": set(OPTIONS) - reads}
    for name, option in OPTIONS.items():
        assert len(option["description"]) > 30, name
        assert {"default", "type", "example", "version_added"} <= set(option), name
        assert option["type"] in ("string", "boolean", "integer", "float"), name


def test_declared_defaults_are_what_settings_return_when_unset(monkeypatch):
    from airflow_aisec import settings

    for name in OPTIONS:
        monkeypatch.delenv(settings.env_var(name), raising=False)
    settings.reload()
    try:
        assert settings.evidence_aws_conn_id() == OPTIONS["evidence_aws_conn_id"]["default"]
        assert settings.allow_runtime_policy() is (OPTIONS["allow_runtime_policy"]["default"] == "True")
        for name in ("default_policy", "platform_policy", "baseline_policy", "handoff_key"):
            assert getattr(settings, name)() == OPTIONS[name]["default"] == "", name
    finally:
        monkeypatch.undo()
        settings.reload()


@pytest.mark.parametrize(("kind", "subpackage", "base"), [
    ("operators", "operators", "airflow.sdk:BaseOperator"),
    ("sensors", "sensors", "airflow.sdk:BaseSensorOperator"),
    ("triggers", "triggers", "airflow.triggers.base:BaseTrigger"),
])
def test_listed_modules_import_and_cover_every_class(kind, subpackage, base):
    module_name, _, cls_name = base.partition(":")
    base_cls = getattr(importlib.import_module(module_name), cls_name)
    listed = _listed(kind)
    assert listed, kind
    for name in listed:
        importlib.import_module(name)
    assert _modules_defining(subpackage, base_cls) == set(listed)
    if kind == "operators":  # sensors are operators too, listed apart
        assert not set(listed) & set(_listed("sensors"))


def test_hooks_triggers_links_notifiers_and_plugins_import():
    from airflow.plugins_manager import AirflowPlugin
    from airflow.sdk import BaseNotifier, BaseOperatorLink
    from airflow.sdk.module_loading import import_string

    for name in _listed("hooks"):
        assert callable(importlib.import_module(name).get_vault_client)
    links = INFO["extra-links"]
    assert links
    for path in links:
        assert issubclass(import_string(path), BaseOperatorLink), path
    assert INFO["notifications"]
    for path in INFO["notifications"]:
        assert issubclass(import_string(path), BaseNotifier), path
    plugins = INFO["plugins"]
    assert plugins
    for plugin in plugins:
        cls = import_string(plugin["plugin-class"])
        assert issubclass(cls, AirflowPlugin) and cls.name == plugin["name"]
        # the plugin registers the same extra links the metadata lists
        assert {type(link).__name__ for link in cls.operator_extra_links} == {p.rsplit(".", 1)[1] for p in links}


@pytest.mark.integration
def test_airflow_config_list_shows_every_option_with_its_description(airflow_db):
    out = subprocess.run([str(BIN / "airflow"), "config", "list", "--section", "aisec", "--include-descriptions",
                          "--include-examples", "--color", "off"],
                         check=False, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # descriptions are wrapped over comment lines
    flat = text.replace(" # ", " ")
    assert "[aisec]" in out.stdout
    for name, option in OPTIONS.items():
        assert f"{name} =" in out.stdout, name
        words = " ".join(option["description"].split()[:6])
        assert words in flat, (name, words)
