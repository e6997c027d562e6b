"""``aisec secrets check --policy P --dag-id ID [--task-id ID] [PATH[:KEY,...]...]``: the secrets gate.

Runs the same check as ``VaultSecretsGateOperator`` (:func:`~airflow_aisec.core.gates.secrets.check_secrets`)
for one DAG (and task): every PATH must be granted by the policy, readable with this token and
hold its required KEYs; values too short for Airflow's masker are findings. Without PATHs it
checks everything the policy grants that DAG/task (patterns expanded by listing) and its database
roles (``sys/capabilities-self``: no credentials are created).

Vault address and token come from the standard ``VAULT_ADDR`` / ``VAULT_TOKEN`` environment
(plus ``VAULT_NAMESPACE``, ``VAULT_CACERT``, ``VAULT_SKIP_VERIFY``). Run it with the token the
workers use. Secret values are read and dropped at once: nothing about them is printed.

Exit codes: 0 pass (or warn), 1 a path not granted, unreadable or missing, or another finding,
2 invalid policy, arguments or configuration, 3 Vault unreachable or sealed.
"""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import CliError, add_gate_arguments, add_verbs, run_gate_command

GATE = "secrets"


def _requests(items: list[str]) -> dict[str, list[str]] | None:
    """``PATH`` or ``PATH:KEY,KEY`` arguments as the operator's ``paths`` mapping (None: none given)."""
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        path, _, keys = item.partition(":")
        if path in out:
            raise CliError(f"secret path {path!r} given twice")
        out[path] = [k for k in keys.split(",") if k] if keys else []
    return out


def _check(args: argparse.Namespace) -> int:
    paths = _requests(args.paths)

    def check(loaded):
        from airflow_aisec.core.gates.secrets import check_secrets
        from airflow_aisec.core.io.vault import VaultClient

        return check_secrets(loaded.section(GATE), paths, dag_id=args.dag_id, task_id=args.task_id,
                             vault=VaultClient.from_env())

    return run_gate_command(args, GATE, check)


def _handoff_key(args: argparse.Namespace) -> int:
    """Print a new ``[aisec] handoff_key`` (32 random bytes, URL-safe base64)."""
    from airflow_aisec.core.gates.secrets import new_handoff_key

    print(new_handoff_key())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "secrets", "check Vault secret grants")
    check = verbs.add_parser(
        "check",
        help="run the secrets gate for a DAG: its secrets granted, readable and maskable "
        "(VAULT_ADDR/VAULT_TOKEN)",
        description="Run the same check as VaultSecretsGateOperator for DAG_ID (and TASK_ID): each PATH "
        "must be granted by the policy, readable, and hold its required KEYs. Without PATHs, everything "
        "the policy grants the DAG/task, and its database roles' creds paths (sys/capabilities-self). "
        "Values are read and discarded, never printed.",
    )
    check.add_argument("paths", nargs="*", metavar="PATH[:KEY,...]",
                       help="secret path relative to secrets.kv_mount, optionally with the keys it must hold")
    check.add_argument("--dag-id", required=True, metavar="DAG_ID", help="the DAG whose grants apply")
    check.add_argument("--task-id", metavar="TASK_ID",
                       help="the task that reads the secrets (default: any task of the DAG)")
    add_gate_arguments(check)
    check.set_defaults(handler=_check)
    key = verbs.add_parser(
        "handoff-key",
        help="print a new key for [aisec] handoff_key (seals the secrets hand-off in XCom; set it on workers)",
    )
    key.set_defaults(handler=_handoff_key)
