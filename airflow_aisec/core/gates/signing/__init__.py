"""The ``signing`` gate: OpenSSF model-signing bundles, signed with a local PEM key or a Vault Transit key.

:func:`sign_model` and :func:`verify_model` are the entry points (:mod:`.check`). One class per
kind of key, behind an abstract base (as in sigstore/model-transparency): :class:`Signer`
(:class:`PemKeySigner`, :class:`TransitSigner`) and :class:`Verifier` (:class:`PemKeyVerifier`,
:class:`TransitVerifier`). The rest is private: ``_keys`` (PEM keys, fingerprints), ``_transit``
(Transit public keys), ``_locations`` (model and signature locations), ``_tree`` (model directory
checks), ``_s3`` (S3 version pins), ``_hashing``, ``_bundle`` (bundle and statement validation),
``_tamper`` (library verification, what changed) and ``_model_signing_compat`` (the one module
that touches model-signing internals). ``model_signing`` is imported only when used.
"""

from airflow_aisec.core.gates.signing._errors import (
    GATE,
    RULE_FAILED,
    RULE_MALFORMED,
    RULE_TAMPERED,
    RULE_UNSIGNED,
    RULE_UNTRUSTED,
)
from airflow_aisec.core.gates.signing._hashing import build_hashing_config
from airflow_aisec.core.gates.signing._keys import key_fingerprint, load_private_key, load_public_key
from airflow_aisec.core.gates.signing._locations import SIGNATURE_SUFFIX, default_signature_uri
from airflow_aisec.core.gates.signing._signers import PemKeySigner, Signer, TransitSigner
from airflow_aisec.core.gates.signing._transit import TransitKey, read_transit_key
from airflow_aisec.core.gates.signing._verifiers import PemKeyVerifier, TransitVerifier, Verifier
from airflow_aisec.core.gates.signing.check import sign_model, verify_model

__all__ = [
    "GATE",
    "RULE_FAILED",
    "RULE_MALFORMED",
    "RULE_TAMPERED",
    "RULE_UNSIGNED",
    "RULE_UNTRUSTED",
    "SIGNATURE_SUFFIX",
    "PemKeySigner",
    "PemKeyVerifier",
    "Signer",
    "TransitKey",
    "TransitSigner",
    "TransitVerifier",
    "Verifier",
    "build_hashing_config",
    "default_signature_uri",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "read_transit_key",
    "sign_model",
    "verify_model",
]
