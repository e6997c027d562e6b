"""Reading and validating KV secrets: each value is registered with the masker before anything else.

Validation reads each requested secret once (exists, not deleted, required keys present, every
value long enough for Airflow's masker) and drops the values at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.secrets._masking import GATE, MIN_MASKABLE_LENGTH, Mask, mask_values, no_mask
from airflow_aisec.core.gates.secrets._requests import SecretRequest, authorize_paths, validate_secret_path
from airflow_aisec.core.io.vault import vault_uri
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient


def read_kv(
    vault: VaultClient,
    mount: str,
    path: str,
    *,
    kv_version: int = 2,
    version: int | None = None,
    mask: Mask = no_mask,
) -> tuple[dict[str, Any], int | None]:
    """Read one KV secret and register its values with the masker before returning them.

    Returns:
        (the secret's key/value data, its KV v2 version or None).

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed (retryable).
        AccessDeniedError: permission denied, or the path is missing/deleted (not retryable).
    """
    validate_secret_path(path)
    secret = vault.kv_read(mount, path, kv_version=kv_version, version=version, gate=GATE)
    mask_values(secret.data, mask)
    return secret.data, secret.version


def validate_secrets(
    vault: VaultClient,
    section: SecretsPolicy,
    *,
    dag_id: str,
    task_id: str | None,
    requests: Sequence[SecretRequest],
    mask: Mask = no_mask,
) -> tuple[CheckOutcome, dict[str, int | None]]:
    """Authorize and validate requested secrets (values are masked, then dropped).

    Returns:
        The value-free outcome (findings ``secrets.value_unmaskable``) and each path's version.

    Raises:
        SecurityViolationError: a path is not granted by the policy.
        AccessDeniedError: a path denied by Vault, or missing.
        InputDataError: a required key is missing.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    authorize_paths(section, dag_id, task_id, [r.path for r in requests])
    findings: list[Finding] = []
    inputs: list[InputRef] = []
    versions: dict[str, int | None] = {}
    keys_total = 0
    for req in requests:
        data, version = read_kv(vault, section.kv_mount, req.path, kv_version=section.kv_version, mask=mask)
        try:
            missing = [k for k in req.required_keys if k not in data]
            if missing:
                raise InputDataError(
                    f"secret {vault_uri(section.kv_mount, req.path)} lacks required key(s): "
                    + ", ".join(missing)
                )
            unmaskable = [k for k in mask_values(data, no_mask) if not section.key_may_be_unmaskable(k)]
            if unmaskable:
                findings.append(
                    Finding(
                        rule=f"{GATE}.value_unmaskable",
                        severity=Severity.HIGH,
                        message=(
                            f"{len(unmaskable)} value(s) of {vault_uri(section.kv_mount, req.path)} are "
                            f"shorter than {MIN_MASKABLE_LENGTH} characters (or a reserved word), so "
                            "Airflow's masker would not hide them; lengthen them or list the keys under "
                            "secrets.unmaskable_keys"
                        ),
                        count=len(unmaskable),
                        location={"path": req.path, "keys": sorted(unmaskable)},
                    )
                )
            keys_total += len(data)
        finally:
            data.clear()  # the gate only needed to look
        versions[req.path] = version
        inputs.append(InputRef(uri=vault_uri(section.kv_mount, req.path, version)))
    metrics = {"secrets": len(requests), "keys": keys_total, "kv_mount": section.kv_mount}
    return CheckOutcome(findings=findings, metrics=metrics, inputs=inputs), versions
