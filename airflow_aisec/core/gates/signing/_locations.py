"""Where models and signatures live (local paths or S3), and reading/writing a signature file.

A signature is stored next to the model (``<model>.sig``) unless named, never inside it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_aisec.core.gates.signing._errors import malformed
from airflow_aisec.core.io.files import check_regular_file, open_user_file
from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri, translate_s3_errors
from airflow_aisec.exceptions import ConfigurationError, InputDataError

#: Signature file suffix used when no signature path is given (next to the model, never inside).
SIGNATURE_SUFFIX = ".sig"


@dataclass(frozen=True)
class Location:
    """A model directory / S3 prefix, or a signature file / S3 object."""

    uri: str
    s3: bool
    bucket: str = ""
    key: str = ""  # for a model: the prefix, ending in "/" (or empty for a whole bucket)
    path: Path | None = None

    @property
    def name(self) -> str:
        if self.s3:
            stripped = self.key.rstrip("/")
            return stripped.rsplit("/", 1)[-1] if stripped else self.bucket
        assert self.path is not None
        return self.path.name or Path(os.path.abspath(self.path)).name


def model_location(model: str | os.PathLike[str]) -> Location:
    uri = str(model)
    if not uri.strip():
        raise ConfigurationError("no model location given")
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        prefix = loc.key
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return Location(uri=f"s3://{loc.bucket}/{prefix}", s3=True, bucket=loc.bucket, key=prefix)
    return Location(uri=uri, s3=False, path=Path(uri))


def file_location(uri: str) -> Location:
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        if not loc.key or loc.key.endswith("/"):
            raise ConfigurationError(f"signature location must name an object, not a prefix: {uri}")
        return Location(uri=uri, s3=True, bucket=loc.bucket, key=loc.key)
    return Location(uri=uri, s3=False, path=Path(uri))


def default_signature_uri(model: str | os.PathLike[str]) -> str:
    """Where a model's signature goes when none is named: next to the model, ``<model>.sig``.

    Raises:
        ConfigurationError: the model is a whole bucket (there is no "next to").
    """
    loc = model_location(model)
    if loc.s3:
        if not loc.key:
            raise ConfigurationError("a model at the root of a bucket needs an explicit signature location")
        return f"s3://{loc.bucket}/{loc.key.rstrip('/')}{SIGNATURE_SUFFIX}"
    assert loc.path is not None
    return str(Path(os.path.abspath(loc.path)).parent / (loc.name + SIGNATURE_SUFFIX))


def signature_inside_model(model: Location, sig: Location) -> bool:
    if model.s3 != sig.s3:
        return False
    if model.s3:
        return sig.bucket == model.bucket and sig.key.startswith(model.key)
    assert model.path is not None and sig.path is not None
    root = os.path.realpath(model.path)
    target = os.path.realpath(sig.path)
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def read_signature(sig: Location, client: Any, limit: int) -> tuple[bytes | None, str | None]:
    """Signature bytes (None when missing) and, on S3, the version read."""
    if sig.s3:
        from botocore.exceptions import ClientError

        from airflow_aisec.core.io.storage import s3_error_is_missing

        try:
            head = client.head_object(Bucket=sig.bucket, Key=sig.key)
        except ClientError as exc:
            if s3_error_is_missing(exc):
                return None, None
            # Anything else (a 400, a redirect, a denial) is not "unsigned": it must not pass as one.
            with translate_s3_errors(sig.uri):
                raise
        except Exception:
            with translate_s3_errors(sig.uri):
                raise
        if int(head.get("ContentLength", 0)) > limit:
            raise malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
        version = head.get("VersionId")
        extra = {"VersionId": version} if version and version != "null" else {}
        with translate_s3_errors(sig.uri):
            data = client.get_object(Bucket=sig.bucket, Key=sig.key, **extra)["Body"].read(limit + 1)
        if len(data) > limit:
            raise malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
        return data, version
    assert sig.path is not None
    # Only a signature that is really absent means "unsigned"; a dangling or looping symlink, a FIFO,
    # a device or a directory is bad input (exit 2), refused before any byte is read.
    if not os.path.lexists(sig.path):
        return None, None
    st = check_regular_file(sig.path, "signature")
    if st.st_size > limit:
        raise malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
    with open_user_file(sig.path, "signature") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise InputDataError(f"{sig.uri}: cannot read signature: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
    return data, None


def write_signature(sig: Location, data: bytes, client: Any) -> str | None:
    """Write a signature (atomically on a local disk); returns the S3 version written, if any.

    Under a policy floor the write is held back and done once by the runner (then None here).
    """
    from airflow_aisec.core.outputs import deliver

    written: list[str | None] = []
    deliver(sig.uri, data, lambda: written.append(_write_now(sig, data, client)))
    return written[0] if written else None


def _write_now(sig: Location, data: bytes, client: Any) -> str | None:
    if sig.s3:
        with translate_s3_errors(sig.uri):
            response = client.put_object(Bucket=sig.bucket, Key=sig.key, Body=data,
                                         ContentType="application/json")
        return response.get("VersionId")
    assert sig.path is not None
    parent = Path(os.path.abspath(sig.path)).parent
    if not parent.is_dir():
        raise InputDataError(f"signature directory does not exist: {parent}")
    fd, tmp = tempfile.mkstemp(prefix=".aisec-sig-", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, sig.path)  # atomic: a reader never sees half a signature
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return None
