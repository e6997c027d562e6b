"""Provider metadata for Airflow's providers manager (``apache_airflow_provider`` entry point).

``tests/test_provider_info.py`` keeps it equal to the code: every option :mod:`airflow_aisec.settings`
reads is declared under ``config`` (with description, default, type and example, so
``airflow config list --section aisec --include-descriptions`` documents it), every operator, sensor,
trigger and notifier module defining such a class is listed, and every listed class imports.
"""

from __future__ import annotations

from airflow_aisec import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-aisec",
        "name": "AI Security Gates (airflow-aisec)",
        "description": "Policy-driven security gates for AI/ML pipelines: source validation, PII, "
        "Vault secrets, model signing, unsafe model files, bias, drift and a tamper-evident audit trail.",
        # Lifecycle of the provider (Airflow's provider.yaml "state"): ready | suspended | removed.
        "state": "ready",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "AI Security Gates",
                "external-doc-url": "https://github.com/airflow-aisec/airflow-aisec",
                "tags": ["security"],
            }
        ],
        "operators": [
            {
                "integration-name": "AI Security Gates",
                "python-modules": [
                    "airflow_aisec.operators.approval",
                    "airflow_aisec.operators.bias",
                    "airflow_aisec.operators.drift",
                    "airflow_aisec.operators.endpoint",
                    "airflow_aisec.operators.llm_redteam",
                    "airflow_aisec.operators.model_scan",
                    "airflow_aisec.operators.partitions",
                    "airflow_aisec.operators.pii",
                    "airflow_aisec.operators.prompt_injection",
                    "airflow_aisec.operators.secrets",
                    "airflow_aisec.operators.signing",
                    "airflow_aisec.operators.source",
                    "airflow_aisec.operators.storage",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "AI Security Gates", "python-modules": ["airflow_aisec.sensors.signing"]}
        ],
        "triggers": [
            {"integration-name": "AI Security Gates", "python-modules": ["airflow_aisec.triggers.signing"]}
        ],
        "hooks": [{"integration-name": "AI Security Gates", "python-modules": ["airflow_aisec.hooks.vault"]}],
        "notifications": ["airflow_aisec.notifications.webhook.AisecWebhookNotifier"],
        "plugins": [{"name": "aisec", "plugin-class": "airflow_aisec.plugins.aisec_plugin.AisecPlugin"}],
        "extra-links": ["airflow_aisec.operators.links.AisecGateResultLink"],
        "config": {
            "aisec": {
                "description": "airflow-aisec: where policies and the audit trail live, the platform's "
                "policy floor and what DAG authors may choose. Read once per process, when it starts "
                "(environment variables as the process was started, then airflow.cfg).",
                "options": {
                    "default_policy": {
                        "description": "Policy file used by gates that are not given one. "
                        "Empty means gates refuse to run without an explicit policy.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/policies/strict.yaml",
                        "default": "",
                    },
                    "evidence_location": {
                        "description": "Audit trail location: a local directory or s3://bucket/prefix. "
                        "Empty means $AIRFLOW_HOME/aisec/evidence.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://audit-bucket/aisec",
                        "default": "",
                    },
                    "report_roots": {
                        "description": "Extra directories or s3:// prefixes (comma-separated) the UI may "
                        "serve gate reports from, besides <evidence_location>/reports.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/data/aisec-reports,s3://reports-bucket/aisec",
                        "default": "",
                    },
                    "platform_policy": {
                        "description": "Policy file whose 'platform' section the cluster policy enforces "
                        "while DAGs are parsed. Empty: no platform enforcement. Set but unusable: every DAG "
                        "fails to load (fail closed).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/policies/strict.yaml",
                        "default": "",
                    },
                    "evidence_aws_conn_id": {
                        "description": "Airflow connection used for an s3:// evidence location "
                        "(and for s3:// policies: baseline_policy, policies under an s3:// policy root).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": "aws_default",
                    },
                    "baseline_policy": {
                        "description": "The platform's policy floor: a policy file or s3:// location. Every "
                        "gate also runs its check under this policy's section for the gate and the stricter "
                        "outcome wins rule by rule; a DAG's own policy can tighten but never lower an "
                        "enforcement level, add a waiver or widen a secrets grant. Empty: no floor.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "/opt/airflow/policies/baseline.yaml",
                        "default": "",
                    },
                    "baseline_policy_sha256": {
                        "description": "Optional sha256 (hex) the baseline policy must have; a mismatch "
                        "makes every gate end in verdict error.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "3f0c9d...",
                        "default": "",
                    },
                    "policy_roots": {
                        "description": "Comma-separated directories or s3:// prefixes a gate's policy must "
                        "resolve under (symlinks and '..' resolved first); any other policy is verdict "
                        "error. Empty: no restriction.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "/opt/airflow/policies,s3://platform-policies/aisec",
                        "default": "",
                    },
                    "allow_runtime_policy": {
                        "description": "Accept a policy chosen at run time: a policy argument that is a "
                        "Jinja template (e.g. from dag_run.conf) or an XComArg. False: such gates end in "
                        "verdict error.",
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "False",
                    },
                    "handoff_key": {
                        "description": "Key that seals the secrets gate's wrapped hand-off in XCom "
                        "(AES-256-GCM) and authenticates partition summaries and lists (HMAC-SHA256 under a key derived "
                        "from it): 32 random bytes, URL-safe base64 ('aisec secrets handoff-key' prints "
                        "one); comma-separated keys rotate (the first seals). Set it where tasks run (workers), "
                        "not on the API server. Empty: secrets gates and partition operators fail with a "
                        "configuration error instead of putting a usable wrapping token or an unauthenticated "
                        "summary in XCom.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "sensitive": True,
                        "example": None,
                        "default": "",
                    },
                },
            }
        },
    }
