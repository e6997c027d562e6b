"""``[aisec]`` settings (airflow_aisec/settings.py): defaults and environment overrides, as a snapshot.

The process keeps the values it started with (tests/security/test_attack_settings_tamper.py shows a DAG
file cannot change them); this test process changes its environment through ``monkeypatch``, whose
``setenv``/``delenv`` take a new snapshot via the test-only ``settings.reload()`` (tests/conftest.py).
"""

from __future__ import annotations

import os

from airflow_aisec import settings


def test_defaults_when_nothing_is_configured(monkeypatch, tmp_path):
    for option in ("default_policy", "evidence_location", "evidence_aws_conn_id", "report_roots",
                   "platform_policy", "baseline_policy", "baseline_policy_sha256", "policy_roots",
                   "allow_runtime_policy"):
        monkeypatch.delenv(settings.env_var(option), raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert settings.default_policy() == ""
    assert settings.evidence_location() == os.path.join(str(tmp_path), "aisec", "evidence")
    assert settings.evidence_aws_conn_id() == "aws_default"
    assert settings.report_roots() == []
    assert settings.platform_policy() == ""
    assert settings.baseline_policy() == "" and settings.baseline_policy_sha256() == ""
    assert settings.policy_roots() == [] and settings.allow_runtime_policy() is False


def test_environment_overrides_after_reload(monkeypatch):
    monkeypatch.setenv("AIRFLOW__AISEC__DEFAULT_POLICY", "/p/strict.yaml")
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", "s3://audit/trail")
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_AWS_CONN_ID", "audit_s3")
    monkeypatch.setenv("AIRFLOW__AISEC__REPORT_ROOTS", " /r/a, ,s3://b/reports ")
    monkeypatch.setenv("AIRFLOW__AISEC__PLATFORM_POLICY", "  /p/platform.yaml \n")
    assert settings.default_policy() == "/p/strict.yaml"
    assert settings.evidence_location() == "s3://audit/trail"
    assert settings.evidence_aws_conn_id() == "audit_s3"
    assert settings.report_roots() == ["/r/a", "s3://b/reports"]
    assert settings.platform_policy() == "/p/platform.yaml"
    monkeypatch.setenv("AIRFLOW__AISEC__DEFAULT_POLICY", "/p/other.yaml")
    assert settings.default_policy() == "/p/other.yaml"  # monkeypatch took a new snapshot
    monkeypatch.setenv("AIRFLOW__AISEC__BASELINE_POLICY_SHA256", " AB" + "c" * 62)
    monkeypatch.setenv("AIRFLOW__AISEC__POLICY_ROOTS", "/opt/p, s3://b/policies")
    monkeypatch.setenv("AIRFLOW__AISEC__ALLOW_RUNTIME_POLICY", "true")
    assert settings.baseline_policy_sha256() == "ab" + "c" * 62
    assert settings.policy_roots() == ["/opt/p", "s3://b/policies"] and settings.allow_runtime_policy() is True


def test_a_plain_os_environ_change_is_not_seen_until_reload():
    import os

    before = settings.default_policy()
    os.environ["AIRFLOW__AISEC__DEFAULT_POLICY"] = "/attacker.yaml"
    try:
        assert settings.default_policy() == before
        settings.reload()
        assert settings.default_policy() == "/attacker.yaml"
    finally:
        del os.environ["AIRFLOW__AISEC__DEFAULT_POLICY"]
        settings.reload()


def test_every_option_is_declared_for_airflow():
    from airflow_aisec.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["aisec"]["options"]
    for name in ("baseline_policy", "baseline_policy_sha256", "policy_roots", "allow_runtime_policy"):
        assert options[name]["description"] and "default" in options[name]


def test_importing_settings_does_not_import_airflow():
    import subprocess
    import sys

    code = ("import sys, airflow_aisec.settings\n"
            "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
