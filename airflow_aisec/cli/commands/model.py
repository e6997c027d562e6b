"""``aisec model sign|verify|scan``: model signing, verification and unsafe-file scanning.

* ``aisec model sign DIR (--key PRIVATE_PEM | --transit-key NAME) [--signature OUT] [--policy P]
  [--dataset FILE ... --evidence LOCATION] [--training-param KEY=VALUE ...] [--provenance OUT]``
* ``aisec model verify DIR --policy P (--public-key PEM | --transit-key NAME) [--signature SIG]
  [--require-provenance] [--provenance P] [--evidence LOCATION]``
* ``aisec model bom DIR [--signature SIG] [--provenance P] [--output OUT]``
* ``aisec model scan DIR --policy P``

Vault comes from ``VAULT_ADDR`` / ``VAULT_TOKEN``; S3 from the standard AWS environment
(``AWS_ENDPOINT_URL`` and friends). An encrypted private key's password is read from
``AISEC_SIGNING_KEY_PASSWORD`` (never from the command line, where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, run_gate_command
from airflow_aisec.core.io.json_input import loads_json

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
            s3_client=s3_client_if_needed(args.model, args.signature, args.provenance),
            provenance=request,
        )

    request = _provenance_request(args)
    return run_gate_command(args, "signing", check, load=load, details=_print_signature)


def _provenance_request(args: argparse.Namespace) -> Any:
    """What ``model sign`` records in the provenance; None when nothing asks for one."""

    from airflow_aisec.cli.args import CliError
    from airflow_aisec.core.gates.signing import ProvenanceRequest, check_training_parameters, dataset_ref

    if not (args.dataset or args.training_param or args.provenance):
        return None
    if args.dataset and not args.evidence:
        raise CliError("--dataset needs --evidence LOCATION: the audit trail holding its source and PII records")
    params: dict[str, Any] = {}
    for item in args.training_param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--training-param {item[:40]!r}: expected KEY=VALUE")
        try:
            params[key] = loads_json(value)
        except ValueError:
            params[key] = value
    from airflow_aisec.core.evidence import open_evidence_store

    return ProvenanceRequest(
        datasets=[dataset_ref(d) for d in args.dataset or []],
        evidence=open_evidence_store(args.evidence) if args.evidence else None,
        require_vetted=True,
        training_parameters=check_training_parameters(params),
        location=args.provenance,
    )


def _print_signature(result: Any) -> None:
    m = result.metrics
    print(f"  signature: {m.get('signature')}")
    print(f"  model digest (sha256 of file digests): {m.get('model_digest')}  files: {m.get('files')}")
    key = m.get("key_fingerprint")
    if m.get("transit_key"):
        key = f"Transit key {m['transit_key']} v{m.get('transit_key_version')} ({key})"
    print(f"  key: {key}{'' if m.get('key_trusted_by_policy') else '  [not in the policy trusted_keys]'}")
    if m.get("provenance"):
        print(f"  provenance: {m['provenance']}  datasets: {m.get('provenance_datasets')}")


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
            s3_client=s3_client_if_needed(args.model, args.signature, args.public_key, args.provenance),
            require_provenance=args.require_provenance,
            provenance=args.provenance,
            evidence=open_evidence_store(args.evidence) if args.evidence else None,
        )

    from airflow_aisec.core.evidence import open_evidence_store

    return run_gate_command(args, "signing", check)


def _bom(args: argparse.Namespace) -> int:
    import json

    from airflow_aisec.core.gates.signing import model_bom
    from airflow_aisec.core.io.storage import s3_client_if_needed

    doc = model_bom(args.model, signature=args.signature, provenance=args.provenance,
                    s3_client=s3_client_if_needed(args.provenance, args.signature))
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"ML-BOM (CycloneDX {doc['specVersion']}): {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _scan(args: argparse.Namespace) -> int:
    def check(loaded: Any) -> Any:
        from airflow_aisec.core.gates.model_scan import scan_model
        from airflow_aisec.core.io.storage import s3_client_if_needed

        return scan_model(loaded.section("model_scan"), args.model, s3_client=s3_client_if_needed(args.model))

    return run_gate_command(args, "model_scan", check, details=_print_scan_coverage)


def _print_scan_coverage(result: Any) -> None:
    """Which scanner scanned what; a file a scanner did not scan is named, never a silent pass."""
    m = result.metrics
    scanned = ", ".join(f"{name} {n}" for name, n in (m.get("scanned_by") or {}).items())
    print(f"  files: {m.get('files')}  scanned by: {scanned}")
    not_scanned = m.get("not_scanned") or {}
    for name, files in not_scanned.items():
        for entry in files[:20]:
            print(f"  not scanned by {name}: {entry['file']} ({', '.join(entry['reasons'])})")
        more = (m.get("scanner_errors") or {}).get(name, len(files)) - min(len(files), 20)
        if more > 0:
            print(f"  not scanned by {name}: {more} more file(s) (see --json)")
    if not_scanned:
        print(f"  scanner errors -> {m.get('scanner_error_outcome')}")


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
    sign.add_argument("--dataset", action="append", metavar="FILE",
                      help="training dataset recorded in the signed provenance (repeatable; needs --evidence, "
                      "refused unless its latest source and PII records there pass)")
    sign.add_argument("--training-param", action="append", metavar="KEY=VALUE",
                      help="training parameter recorded in the provenance (VALUE as JSON, else a string)")
    sign.add_argument("--provenance", metavar="OUT",
                      help="provenance location (default DIR.provenance.json next to DIR)")
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
    verify.add_argument("--require-provenance", action="store_true",
                        help="also require the signed provenance; its datasets are checked in --evidence")
    verify.add_argument("--provenance", metavar="P", help="provenance location (default DIR.provenance.json)")
    add_gate_arguments(verify)
    verify.set_defaults(handler=_verify)

    bom = verbs.add_parser(
        "bom",
        help="write a CycloneDX ML-BOM of a model from its provenance",
        description="CycloneDX 1.6 ML-BOM (model card, datasets with their gate records, hashes) from the "
        "provenance written by 'model sign'. Verify first: the BOM repeats what the statement says.",
    )
    bom.add_argument("model", metavar="DIR", help="model directory")
    bom.add_argument("--signature", metavar="SIG", help="signature location (default DIR.sig next to DIR)")
    bom.add_argument("--provenance", metavar="P", help="provenance location (default DIR.provenance.json)")
    bom.add_argument("--output", "-o", metavar="OUT", help="write the BOM here (default: stdout)")
    bom.set_defaults(handler=_bom)

    scan = verbs.add_parser(
        "scan",
        help="scan a model directory for unsafe files (pickle payloads, forbidden formats)",
        description="Runs picklescan, modelscan and a built-in static analysis; never loads a model.",
    )
    scan.add_argument("model", metavar="DIR", help="model directory or s3://bucket/prefix/")
    add_gate_arguments(scan)
    scan.set_defaults(handler=_scan)
