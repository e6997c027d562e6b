"""Where a dataset comes from: its canonical form, and the origin allow-list check.

Local paths are resolved (symlinks, ``..``) before matching; S3 keys with ``.``/``..`` segments are
refused. A dataset from outside the allow-list is refused *before any byte is read*.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri
from airflow_aisec.core.policy.sections.source import Origin, SourcePolicy, parse_origin
from airflow_aisec.exceptions import InputDataError

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Target:
    """A dataset URI with the canonical form used for origin and pin matching."""

    uri: str
    canonical: str
    scheme: str
    bucket: str | None
    path: str
    role: str = "data"

    @property
    def read_uri(self) -> str:
        return self.canonical if self.scheme == "s3" else self.path


def resolve_local(path: str, base_dir: str | None) -> str:
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    return os.path.realpath(os.path.abspath(path))


def canonical_target(uri: str, *, base_dir: str | None = None, role: str = "data") -> Target:
    """Canonical form of a dataset URI.

    Raises:
        InputDataError: unsupported scheme, an S3 URI without an object key, or an S3 key with
            ``.``/``..`` segments (which some clients and proxies normalise away).
    """
    text = str(uri).strip()
    if not text:
        raise InputDataError("empty dataset URI")
    if is_s3_uri(text):
        loc = parse_s3_uri(text)
        if not loc.key or loc.key.endswith("/"):
            raise InputDataError(f"S3 URI names a bucket or prefix, not an object: {text}")
        if any(part in (".", "..") for part in loc.key.split("/")):
            raise InputDataError(f"S3 key with '.' or '..' path segments refused: {text}")
        return Target(text, loc.uri, "s3", loc.bucket, loc.key, role)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise InputDataError(f"unsupported URI scheme '{scheme}' (only local paths and s3:// are read): {uri}")
    real = resolve_local(text, base_dir)
    return Target(str(uri), real, "file", None, real, role)


def _local_pattern(path: str, base_dir: str | None) -> str:
    """Absolute, normalised glob whose fixed leading directories are resolved like inputs are."""
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    path = os.path.normpath(os.path.abspath(path))
    parts = path.split(os.sep)
    fixed = 0
    for i, part in enumerate(parts):
        if _GLOB_CHARS.search(part):
            break
        fixed = i + 1
    if fixed == len(parts):
        return os.path.realpath(path)
    head = os.path.realpath(os.sep.join(parts[:fixed]) or os.sep)
    return os.path.join(head, *parts[fixed:])


def origin_allowed(target: Target, origins: Iterable[Origin], *, base_dir: str | None = None) -> bool:
    """Whether a canonical target matches one allow-list entry (bucket and key matched separately)."""
    for origin in origins:
        if origin.scheme != target.scheme:
            continue
        if target.scheme == "s3":
            if fnmatch.fnmatchcase(target.bucket or "", origin.bucket or "") and fnmatch.fnmatchcase(
                target.path, origin.path
            ):
                return True
        elif fnmatch.fnmatchcase(target.path, _local_pattern(origin.path, base_dir)):
            return True
    return False


def check_origins(targets: Iterable[Target], section: SourcePolicy, base_dir: str | None) -> None:
    """Refuse (before reading anything) every target outside the allow-list.

    Raises:
        InputDataError: the first target not on the allow-list.
    """
    origins = [parse_origin(p) for p in section.origins]
    for target in targets:
        if not origin_allowed(target, origins, base_dir=base_dir):
            what = "reference dataset" if target.role == "reference" else "dataset"
            raise InputDataError(f"{what} origin not on the allow-list (source.origins): {target.uri}")
