"""The ``signing`` gate: OpenSSF model-signing bundles, signed with a local PEM key or a Vault Transit key.

:func:`sign_model` and :func:`verify_model` are the entry points (:mod:`.check`). One class per
kind of key, behind an abstract base (as in sigstore/model-transparency): :class:`Signer`
(:class:`PemKeySigner`, :class:`TransitSigner`) and :class:`Verifier` (:class:`PemKeyVerifier`,
:class:`TransitVerifier`). The rest is private: ``_keys`` (PEM keys, fingerprints), ``_transit``
(Transit public keys), ``_locations`` (model and signature locations), ``_tree`` (model directory
checks), ``_s3`` (S3 version pins), ``_hashing``, ``_bundle`` (bundle and statement validation),
``_tamper`` (library verification, what changed), ``_provenance`` / ``_datasets`` / ``_bom``
(signed provenance, dataset records in the audit trail, CycloneDX ML-BOM) and ``_model_signing_compat`` (the one module
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
from airflow_aisec.core.gates.signing._provenance import (
    PREDICATE_TYPE,
    RULE_PROVENANCE_DATASET,
    RULE_PROVENANCE_DIGEST,
    RULE_PROVENANCE_MISSING,
    RULE_PROVENANCE_SIGNATURE,
    DatasetRef,
    ProvenanceRequest,
    check_training_parameters,
    dag_file_info,
    dataset_ref,
    default_provenance_uri,
)
from airflow_aisec.core.gates.signing._signers import PemKeySigner, Signer, TransitSigner
from airflow_aisec.core.gates.signing._transit import TransitKey, read_transit_key
from airflow_aisec.core.gates.signing._verifiers import PemKeyVerifier, TransitVerifier, Verifier
from airflow_aisec.core.gates.signing.check import model_bom, sign_model, verify_model

__all__ = [
    "GATE",
    "PREDICATE_TYPE",
    "RULE_FAILED",
    "RULE_MALFORMED",
    "RULE_PROVENANCE_DATASET",
    "RULE_PROVENANCE_DIGEST",
    "RULE_PROVENANCE_MISSING",
    "RULE_PROVENANCE_SIGNATURE",
    "RULE_TAMPERED",
    "RULE_UNSIGNED",
    "RULE_UNTRUSTED",
    "SIGNATURE_SUFFIX",
    "DatasetRef",
    "PemKeySigner",
    "PemKeyVerifier",
    "ProvenanceRequest",
    "Signer",
    "TransitKey",
    "TransitSigner",
    "TransitVerifier",
    "Verifier",
    "build_hashing_config",
    "check_training_parameters",
    "dag_file_info",
    "dataset_ref",
    "default_provenance_uri",
    "default_signature_uri",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "model_bom",
    "read_transit_key",
    "sign_model",
    "verify_model",
]
