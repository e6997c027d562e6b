"""The one place that touches ``model_signing`` internals (pinned: model-signing 1.1.1).

model-signing has no public hook for a custom signer yet (sigstore/model-transparency
issue #203, PR #597 for KMS signers is open), so a Vault Transit signer has to subclass the
private ``model_signing._signing.sign_sigstore_pb.Signer`` and build the bundle the same way
the library's own elliptic-key signer does. Everything that depends on private names lives
here, so an upgrade of model-signing has exactly one file to re-check (the version guard
below makes a silent drift impossible).

Nothing here imports ``model_signing`` at module level: the core stays import-cheap.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

#: The model-signing release whose internals this module was written against.
SUPPORTED_VERSION = "1.1.1"

# Modules of model-signing that key-based signing and verification never use but that cost
# ~0.6 s to import (sigstore-python, TUF, boto3 through securesystemslib): the Sigstore
# keyless signer and the certificate signer. They are registered as lazy modules, so they
# load only if something actually uses them.
_LAZY_SUBMODULES = ("sign_sigstore", "sign_certificate")


def _install_lazy_submodules() -> None:
    """Register the Sigstore/certificate signer modules as lazy before ``model_signing`` loads.

    ``model_signing/__init__`` imports ``signing`` and ``verifying``, which bind these modules
    at import time but touch them only inside ``use_sigstore_*``/``use_certificate_*``. The
    parent package ``model_signing._signing`` is pre-registered with the lazy modules as
    attributes, so ``from model_signing._signing import sign_sigstore`` binds the lazy module
    without executing it. Skipped when ``model_signing`` is already imported (nothing to
    gain) or when the installed version is not the one this was checked against.
    """
    if "model_signing" in sys.modules or "model_signing._signing" in sys.modules:
        return
    try:
        from importlib.metadata import version

        if version("model-signing") != SUPPORTED_VERSION:
            return
        spec = importlib.util.find_spec("model_signing")  # finds, does not import
        if spec is None or not spec.submodule_search_locations:
            return
        root = os.path.join(next(iter(spec.submodule_search_locations)), "_signing")
        pkg_spec = importlib.util.spec_from_file_location(
            "model_signing._signing", os.path.join(root, "__init__.py"), submodule_search_locations=[root]
        )
        if pkg_spec is None or pkg_spec.loader is None:
            return
        package = importlib.util.module_from_spec(pkg_spec)
        sys.modules["model_signing._signing"] = package
        pkg_spec.loader.exec_module(package)
        for short in _LAZY_SUBMODULES:
            name = f"model_signing._signing.{short}"
            sub_spec = importlib.util.spec_from_file_location(name, os.path.join(root, f"{short}.py"))
            if sub_spec is None or sub_spec.loader is None:
                continue
            loader = importlib.util.LazyLoader(sub_spec.loader)
            sub_spec.loader = loader
            module = importlib.util.module_from_spec(sub_spec)
            sys.modules[name] = module
            loader.exec_module(module)
            setattr(package, short, module)
    except Exception:  # noqa: BLE001 - an optimisation only: fall back to the plain import
        for name in ("model_signing._signing", *(f"model_signing._signing.{s}" for s in _LAZY_SUBMODULES)):
            sys.modules.pop(name, None)


def import_model_signing() -> Any:
    """Import and return the ``model_signing`` package (with the lazy optimisation applied).

    Raises:
        ImportError: model-signing (or pyopenssl, which 1.1.1 imports without declaring) is missing.
    """
    _install_lazy_submodules()
    import model_signing
    import model_signing.hashing
    import model_signing.signing
    import model_signing.verifying

    if "model_signing._signing" in sys.modules and not hasattr(model_signing, "_signing"):
        model_signing._signing = sys.modules["model_signing._signing"]
    return model_signing


def library_version() -> str:
    return import_model_signing().__version__


def pae(raw_payload: bytes) -> bytes:
    """DSSE pre-authentication encoding of an in-toto payload (what the signature covers)."""
    import_model_signing()
    from model_signing._signing import sign_sigstore_pb

    return sign_sigstore_pb.pae(raw_payload)


def payload_type() -> str:
    """The DSSE payload type model-signing writes and requires (in-toto JSON)."""
    import_model_signing()
    from model_signing._signing import signing

    return signing._IN_TOTO_JSON_PAYLOAD_TYPE


def bundle_media_type() -> str:
    import_model_signing()
    from model_signing._signing import sign_sigstore_pb

    return sign_sigstore_pb._BUNDLE_MEDIA_TYPE


def predicate_type() -> str:
    import_model_signing()
    from model_signing._signing import signing

    return signing._PREDICATE_TYPE


def public_key_hint(public_key: Any) -> str:
    """The key hint model-signing stores in a bundle: sha256 (hex) of the key's SPKI PEM."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _build_bundle(raw_payload: bytes, der_signature: bytes, public_key: Any) -> str:
    """A sigstore bundle (v0.3 JSON) exactly as model-signing's elliptic-key signer writes it."""
    import_model_signing()
    from model_signing._signing import sign_sigstore_pb, signing
    from sigstore_models import intoto as intoto_pb
    from sigstore_models.bundle import v1 as bundle_pb
    from sigstore_models.common import v1 as common_pb

    envelope = intoto_pb.Envelope(
        payload=base64.b64encode(raw_payload),
        payload_type=signing._IN_TOTO_JSON_PAYLOAD_TYPE,
        signatures=[intoto_pb.Signature(sig=base64.b64encode(der_signature), keyid="")],
    )
    material = bundle_pb.VerificationMaterial(
        public_key=common_pb.PublicKeyIdentifier(hint=public_key_hint(public_key)),
        tlog_entries=[],
    )
    bundle = bundle_pb.Bundle(
        media_type=sign_sigstore_pb._BUNDLE_MEDIA_TYPE,
        verification_material=material,
        dsse_envelope=envelope,
    )
    return bundle.to_json()


def make_payload(manifest: Any, extra_predicate: dict[str, Any] | None = None) -> Any:
    """The in-toto payload model-signing signs for ``manifest``, optionally with extra predicate fields.

    The v1.0 predicate lets producers add fields that verifiers ignore; airflow-aisec uses one
    (``aisec``) to pin S3 object versions inside the signed statement.
    """
    import_model_signing()
    from model_signing._signing import signing

    payload = signing.Payload(manifest)
    if extra_predicate:
        # The predicate is a protobuf Struct: extra top-level keys merge in, the rest is untouched.
        payload.statement.pb.predicate.update(extra_predicate)
    return payload


def raw_payload_bytes(payload: Any) -> bytes:
    """The DSSE payload bytes for a payload (same JSON rendering as model-signing's signers)."""
    from google.protobuf import json_format

    return json_format.MessageToJson(payload.statement.pb).encode("utf-8")


def _signer_base() -> type:
    import_model_signing()
    from model_signing._signing import sign_sigstore_pb

    return sign_sigstore_pb.Signer


def make_digest_signer(sign_digest: Callable[[bytes], bytes], public_key: Any) -> Any:
    """A model-signing ``Signer`` whose private key lives elsewhere (Vault Transit, an HSM, ...).

    Args:
        sign_digest: Called with sha256(PAE(payload)); returns a DER (ASN.1) ECDSA signature over
            that prehashed digest. Vault Transit does this with ``prehashed=True``,
            ``hash_algorithm=sha2-256``, ``marshaling_algorithm=asn1``.
        public_key: The matching ``cryptography`` P-256 public key; each signature is checked
            against it before the bundle is written, so a wrong key version never ships.

    Returns:
        An instance of a ``model_signing._signing.sign_sigstore_pb.Signer`` subclass.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    base = _signer_base()

    class DigestSigner(base):  # type: ignore[misc, valid-type]
        """Signs sha256(PAE(payload)) through a callable; produces the same bundle as the key signer."""

        def __init__(self) -> None:
            self._public_key = public_key

        def sign(self, payload: Any) -> Any:
            from model_signing._signing import sign_sigstore_pb

            raw = raw_payload_bytes(payload)
            digest = hashlib.sha256(sign_sigstore_pb.pae(raw)).digest()
            der = sign_digest(digest)
            # Fail before writing anything if the remote signer used another key.
            try:
                self._public_key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            except InvalidSignature:
                from airflow_aisec.exceptions import InputDataError

                raise InputDataError(
                    "the remote signer returned a signature that does not verify with the expected public key"
                ) from None
            json_text = _build_bundle(raw, der, self._public_key)
            return _TextSignature(json_text)

    return DigestSigner()


def make_key_signer(private_key_path: str, password: bytes | None = None) -> Any:
    """model-signing's own elliptic-key signer for a local PEM private key."""
    import pathlib

    import_model_signing()
    from model_signing._signing import sign_ec_key

    return sign_ec_key.Signer(pathlib.Path(private_key_path), password)


class _TextSignature:
    """Minimal signature object: the bundle JSON, already rendered."""

    def __init__(self, text: str) -> None:
        self.text = text


def sign_payload(signer: Any, payload: Any) -> str:
    """Sign a payload with a model-signing signer and return the bundle JSON text."""
    signature = signer.sign(payload)
    if isinstance(signature, _TextSignature):
        return signature.text
    return signature.bundle.to_json()
