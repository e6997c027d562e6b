"""model-signing hashing configuration from the policy.

Each run builds a fresh configuration (model-signing #650: a reused configuration leaked ignore
paths and let a tampered model pass) and always passes it explicitly (auto-detection is broken
for shard and blake2 signatures in model-signing 1.1.1).
"""

from __future__ import annotations

from typing import Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.policy.sections.signing import SigningPolicy

#: Policy algorithm name -> the name model-signing records in manifests.
MANIFEST_HASH_NAME = {"sha256": "sha256", "blake2": "blake2b", "blake3": "blake3"}


def build_hashing_config(policy: SigningPolicy) -> Any:
    """A new ``model_signing.hashing.Config`` from the policy (never shared between runs)."""
    ms = compat.import_model_signing()
    hp = policy.hashing
    config = ms.hashing.Config()
    if hp.serialization == "files":
        config.use_file_serialization(hashing_algorithm=hp.algorithm, allow_symlinks=policy.allow_symlinks)
    else:
        config.use_shard_serialization(
            hashing_algorithm=hp.algorithm, shard_size=hp.shard_size, allow_symlinks=policy.allow_symlinks
        )
    config.set_ignored_paths(paths=[], ignore_git_paths=policy.ignore_git_paths)
    config.set_allow_symlinks(policy.allow_symlinks)
    return config
