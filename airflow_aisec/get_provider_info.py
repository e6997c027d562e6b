"""Provider metadata for Airflow's providers manager (``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from airflow_aisec import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-aisec",
        "name": "AI Security Gates (airflow-aisec)",
        "description": "Policy-driven security gates for AI/ML pipelines: source validation, PII, "
        "Vault secrets, model signing, unsafe model files, bias, drift and a tamper-evident audit trail.",
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
                    "airflow_aisec.operators.model_scan",
                    "airflow_aisec.operators.pii",
                    "airflow_aisec.operators.secrets",
                    "airflow_aisec.operators.signing",
                    "airflow_aisec.operators.source",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "AI Security Gates", "python-modules": ["airflow_aisec.sensors.signing"]}
        ],
        "hooks": [{"integration-name": "AI Security Gates", "python-modules": ["airflow_aisec.hooks.vault"]}],
        "plugins": [{"name": "aisec", "plugin-class": "airflow_aisec.plugins.aisec_plugin.AisecPlugin"}],
        "extra-links": ["airflow_aisec.operators.links.AisecGateResultLink"],
        "config": {
            "aisec": {
                "description": "airflow-aisec settings.",
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
                        "description": "Airflow connection used for an s3:// evidence location.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": "aws_default",
                    },
                },
            }
        },
    }
