"""``aisec model sign|verify|scan``: model signing, verification and unsafe-file scanning.

* ``aisec model sign DIR (--key PRIVATE_PEM | --transit-key NAME) [--signature OUT] [--policy P]``
* ``aisec model verify DIR --policy P (--public-key PEM | --transit-key NAME) [--signature SIG]``
* ``aisec model scan DIR --policy P``

Vault comes from ``VAULT_ADDR`` / ``VAULT_TOKEN``; S3 from the standard AWS environment
(``AWS_ENDPOINT_URL`` and friends). An encrypted private key's password is read from
``AISEC_SIGNING_KEY_PASSWORD`` (never from the command line, where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, run_gate_command

#: Policy used by ``aisec model sign`` when no ``--policy`` is given: the library's defaults.
BUILTIN_SIGNING_POLICY = b"""version: 1
name: builtin-signing-defaults
description: sha256 per-file hashing, no symlinks, git metadata ignored (model-signing defaults).
signing: {}
"""
PASSWORD_ENV = "AISEC_SIGNING_KEY_PASSWORD"


def _vault() -> Any:
    from airflow_aisec.core.io.vault import VaultClient

    return VaultClient.from_env()


def _sign(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.signing import sign_model
    from airflow_aisec.core.io.storage import s3_client_if_needed
    from airflow_aisec.core.policy import load_policy, parse_policy

    password = os.environ.get(PASSWORD_ENV)

    def load() -> Any:
        if args.policy:
            return load_policy(args.policy)
        return parse_policy(BUILTIN_SIGNING_POLICY, source="<built-in signing defaults>")

    def check(loaded: Any) -> Any:
        return sign_model(
            loaded.section("signing"),
            args.model,
            signature=args.signature,
            private_key=args.key,
            private_key_password=password.encode("utf-8") if (password and args.key) else None,
            transit_key=args.transit_key,
            transit_mount=args.transit_mount,
            transit_key_version=args.key_version,
            vault=_vault() if args.transit_key else None,
            s3_client=s3_client_if_needed(args.model, args.signature),
        )

    return run_gate_command(args, "signing", check, load=load, details=_print_signature)


def _print_signature(result: Any) -> None:
    m = result.metrics
    print(f"  signature: {m.get('signature')}")
    print(f"  model digest (sha256 of file digests): {m.get('model_digest')}  files: {m.get('files')}")
    key = m.get("key_fingerprint")
    if m.get("transit_key"):
        key = f"Transit key {m['transit_key']} v{m.get('transit_key_version')} ({key})"
    print(f"  key: {key}{'' if m.get('key_trusted_by_policy') else '  [not in the policy trusted_keys]'}")


def _verify(args: argparse.Namespace) -> int:
    def check(loaded: Any) -> Any:
        from airflow_aisec.core.gates.signing import verify_model
        from airflow_aisec.core.io.storage import s3_client_if_needed

        return verify_model(
            loaded.section("signing"),
            args.model,
            signature=args.signature,
            public_key=args.public_key,
            transit_key=args.transit_key,
            transit_mount=args.transit_mount,
            vault=_vault() if args.transit_key else None,
            s3_client=s3_client_if_needed(args.model, args.signature, args.public_key),
        )

    return run_gate_command(args, "signing", check)


def _scan(args: argparse.Namespace) -> int:
    def check(loaded: Any) -> Any:
        from airflow_aisec.core.gates.model_scan import scan_model
        from airflow_aisec.core.io.storage import s3_client_if_needed

        return scan_model(loaded.section("model_scan"), args.model, s3_client=s3_client_if_needed(args.model))

    return run_gate_command(args, "model_scan", check)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``aisec model sign|verify|scan``."""
    verbs = add_verbs(sub, "model", "sign, verify and scan ML models")

    sign = verbs.add_parser(
        "sign",
        help="sign a model directory (OpenSSF model-signing format)",
        description="Sign DIR (or s3://bucket/prefix/) with a local PEM EC key or a Vault Transit ecdsa-p256 key "
        f"(VAULT_ADDR/VAULT_TOKEN). An encrypted PEM key's password comes from {PASSWORD_ENV}.",
    )
    sign.add_argument("model", metavar="DIR", help="model directory or s3://bucket/prefix/")
    key = sign.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", metavar="PRIVATE_PEM", help="local PEM EC private key")
    key.add_argument("--transit-key", metavar="NAME", help="Vault Transit key name")
    sign.add_argument("--transit-mount", default="transit", metavar="MOUNT", help="Transit mount (default transit)")
    sign.add_argument("--key-version", type=int, metavar="N", help="Transit key version (default latest)")
    sign.add_argument("--signature", metavar="OUT", help="signature location (default DIR.sig next to DIR)")
    add_gate_arguments(sign, policy_required=False,
                       policy_help="policy whose signing.hashing is used (default: sha256 per file)")
    sign.set_defaults(handler=_sign)

    verify = verbs.add_parser(
        "verify",
        help="verify a model against its signature and the policy's trusted keys",
        description="Exit 0 verified, 1 tampered / untrusted key / malformed or missing signature, 2 invalid "
        "input, 3 Vault or S3 unreachable.",
    )
    verify.add_argument("model", metavar="DIR", help="model directory or s3://bucket/prefix/")
    vkey = verify.add_mutually_exclusive_group(required=True)
    vkey.add_argument("--public-key", metavar="PEM", help="PEM public key (file or s3://) the policy trusts")
    vkey.add_argument("--transit-key", metavar="NAME", help="Vault Transit key name the policy trusts")
    verify.add_argument("--transit-mount", metavar="MOUNT", help="Transit mount (default: as in the policy)")
    verify.add_argument("--signature", metavar="SIG", help="signature location (default DIR.sig next to DIR)")
    add_gate_arguments(verify)
    verify.set_defaults(handler=_verify)

    scan = verbs.add_parser(
        "scan",
        help="scan a model directory for unsafe files (pickle payloads, forbidden formats)",
        description="Runs picklescan, modelscan and a built-in static analysis; never loads a model.",
    )
    scan.add_argument("model", metavar="DIR", help="model directory or s3://bucket/prefix/")
    add_gate_arguments(scan)
    scan.set_defaults(handler=_scan)
