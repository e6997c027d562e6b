"""Model directory checks before hashing: symlinks leaving the model, special files, emptiness.

Nothing here follows a symlink out of the model (model-signing #666) or reads file content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from airflow_aisec.core.gates.signing._errors import listing, tampered
from airflow_aisec.core.io.storage import is_plain_relative_path, walk_tree
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.exceptions import InputDataError

#: Paths model-signing ignores when asked to ignore git metadata (as recorded in manifests).
GIT_PATHS = frozenset({".git", ".gitattributes", ".github", ".gitignore"})


def manifest_path_ok(path: str, serialization: str) -> bool:
    """Whether a file path can appear in a signed manifest: THE predicate both signing (refuse to
    sign) and verification (refuse the manifest) apply, so an untouched signed model always verifies.

    A plain relative path (:func:`~airflow_aisec.core.io.storage.is_plain_relative_path`: no backslash,
    NUL, ``.``/``..`` or empty segment); with shard serialization also no ``:``, which model-signing
    cannot parse back out of a ``path:start:end`` shard name.
    """
    return is_plain_relative_path(path) and not (serialization == "shards" and ":" in path)


@dataclass
class TreeInfo:
    files: int = 0
    total_bytes: int = 0
    escaping_symlinks: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    #: Files whose relative path verification refuses in a manifest (a backslash, ...).
    unplain: list[str] = field(default_factory=list)


def walk_model(root: Path, *, ignore_git_paths: bool, serialization: str = "files") -> TreeInfo:
    """Inventory a model directory without following symlinks (and without reading file content)."""
    info = TreeInfo()
    for rel, _full, st, kind in walk_tree(root, skip_top=GIT_PATHS if ignore_git_paths else ()):
        if kind == "escaping_symlink":
            info.escaping_symlinks.append(rel)
        elif kind == "symlink":
            info.symlinks.append(rel)
        elif kind == "file":
            info.files += 1
            info.total_bytes += st.st_size
        if kind in ("file", "symlink") and not manifest_path_ok(rel, serialization):
            info.unplain.append(rel)
        elif kind == "special":
            info.special.append(rel)
    return info


def check_tree(root: Path, policy: SigningPolicy, *, signing: bool) -> TreeInfo:
    """Refuse a model directory with symlinks leaving it, symlinks the policy does not allow, or
    special files: before signing an input error, at verification tampering (ModelTamperedError)."""
    if not root.exists():
        raise InputDataError(f"model directory not found: {root}")
    if not root.is_dir():
        raise InputDataError(f"model path is not a directory: {root}")
    info = walk_model(root, ignore_git_paths=policy.ignore_git_paths, serialization=policy.hashing.serialization)
    # (paths, reason, what the verification says, what signing says)
    problems = [
        (info.escaping_symlinks, "symlink_escape", "symlink(s) pointing outside the model directory",
         "symlink(s) point outside the model directory"),
        ([] if policy.allow_symlinks else info.symlinks, "symlink",
         "symlink(s) and the policy does not allow symlinks",
         "the model contains symlink(s) and the policy does not allow them"),
        (info.special, "special_file", "special file(s) (fifo, socket or device)", "special file(s) in the model"),
    ]
    if signing:
        # Sign only what verification accepts: the SAME predicate the manifest check applies
        # (manifest_path_ok), so a model signed here always verifies while it is untouched.
        refused = ("file name(s) that verification would refuse (not a plain relative path, e.g. a backslash"
                   + (", or a ':' with shard serialization)" if policy.hashing.serialization == "shards" else ")"))
        problems.append((info.unplain, "bad_path", "", refused))
    for paths, reason, verify_text, sign_text in problems:
        if not paths:
            continue
        if signing:
            raise InputDataError(f"refusing to sign: {sign_text}: {listing(paths)}")
        raise tampered(f"model contains {len(paths)} {verify_text}: {listing(paths)}", reason, paths=paths[:50])
    if signing and info.files == 0:
        raise InputDataError(f"refusing to sign: the model directory has no files: {root}")
    return info
