"""``aisec policy validate PATH`` and ``aisec policy schema``."""

from __future__ import annotations

import argparse
import json

from airflow_aisec.cli.args import add_verbs
from airflow_aisec.core.policy import load_policy, policy_json_schema


def _validate(args: argparse.Namespace) -> int:
    for path in args.paths:
        loaded = load_policy(path)  # PolicyError -> exit 2 with file and field
        sections = [name for name in ("source", "pii", "secrets", "signing", "model_scan", "bias", "drift",
                                      "platform", "prompt_injection", "llm_redteam", "endpoint", "storage")
                    if getattr(loaded.policy, name) is not None]
        print(f"{path}: valid policy '{loaded.name}' sha256={loaded.sha256} sections={','.join(sections) or '-'}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(policy_json_schema(), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "policy", "validate policies, print the policy JSON Schema")
    validate = verbs.add_parser("validate", help="validate one or more policy files")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(handler=_validate)
    schema = verbs.add_parser("schema", help="print the policy JSON Schema")
    schema.set_defaults(handler=_schema)
