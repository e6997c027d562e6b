"""``aisec secrets check --policy P [--dag-id ID]``: is every secret the policy grants readable?

Vault address and token come from the standard ``VAULT_ADDR`` / ``VAULT_TOKEN`` environment
(plus ``VAULT_NAMESPACE``, ``VAULT_CACERT``, ``VAULT_SKIP_VERIFY``). Run it with the token the
workers use. Secret values are read and dropped at once: nothing about them is printed.

Exit codes: 0 every granted path readable, 1 a path unreadable/missing (finding), 2 invalid
policy or configuration, 3 Vault unreachable or sealed.
"""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, run_gate_command

GATE = "secrets"


def _check(args: argparse.Namespace) -> int:
    def check(loaded):
        from airflow_aisec.core.secrets import check_granted_paths
        from airflow_aisec.core.io.vault import client_from_env

        client = client_from_env()
        return check_granted_paths(client, loaded.policy.secrets, dag_id=args.dag_id)

    return run_gate_command(args, GATE, check)


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "secrets", "check Vault secret grants")
    check = verbs.add_parser(
        "check",
        help="check that every KV path and database role the policy grants is readable "
        "(VAULT_ADDR/VAULT_TOKEN)",
        description="Read every secret the policy's secrets.grants allow (values are discarded, "
        "never printed) "
        "and check the database roles' creds paths with sys/capabilities-self.",
    )
    add_gate_arguments(check)
    check.add_argument(
        "--dag-id", metavar="DAG_ID", help="only check the grants whose dag_id glob matches this DAG"
    )
    check.set_defaults(handler=_check)
