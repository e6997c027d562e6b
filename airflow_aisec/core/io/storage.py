"""Small storage helpers shared by the gates: local paths and ``s3://`` URIs.

The core never imports Airflow, so S3 access takes a boto3 client. Operators
pass ``S3Hook(aws_conn_id).get_conn()``; the CLI builds one from the standard
AWS environment (``AWS_ENDPOINT_URL`` and friends) or ``--endpoint-url``.
botocore errors are translated into the project's exceptions so callers can
tell "unreachable, retry" from "missing or denied, fix it".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_aisec.exceptions import AccessDeniedError, InputDataError, ServiceUnavailableError

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def is_s3_uri(uri: str | Path) -> bool:
    return str(uri).startswith(S3_SCHEME)


def parse_s3_uri(uri: str) -> S3Location:
    """Split ``s3://bucket/key`` (key may be empty or a prefix).

    Raises:
        InputDataError: not an s3 URI or no bucket.
    """
    if not is_s3_uri(uri):
        raise InputDataError(f"not an s3:// URI: {uri}")
    rest = uri[len(S3_SCHEME):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputDataError(f"s3 URI without a bucket: {uri}")
    return S3Location(bucket=bucket, key=key)


def make_s3_client(endpoint_url: str | None = None, **kwargs: Any) -> Any:
    """A boto3 S3 client from the standard AWS environment (honours ``AWS_ENDPOINT_URL``)."""
    import boto3  # boto3 is ~0.3 s to import: only when S3 is used

    return boto3.client("s3", endpoint_url=endpoint_url, **kwargs)


_DENIED_CODES = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_MISSING_CODES = {"NoSuchKey", "404", "NoSuchBucket", "NotFound", "NoSuchVersion"}


def s3_error_is_missing(exc: Any) -> bool:
    """Whether a botocore ``ClientError`` says the object or bucket does not exist (and nothing else)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in _MISSING_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


@contextlib.contextmanager
def translate_s3_errors(uri: str) -> Iterator[None]:
    """Map botocore errors to project exceptions, naming the URI but never a credential."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _DENIED_CODES or status == 403:
            raise AccessDeniedError(f"access denied to {uri} ({code or status})") from None
        if s3_error_is_missing(exc):
            raise InputDataError(f"S3 object or bucket not found: {uri}") from None
        if status is not None and int(status) >= 500:
            raise ServiceUnavailableError(f"S3 server error for {uri} ({code or status})") from None
        raise InputDataError(f"S3 request for {uri} failed: {code or status}") from None
    except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as exc:
        raise ServiceUnavailableError(f"S3 endpoint unreachable for {uri}: {type(exc).__name__}") from None
    except NoCredentialsError:
        raise AccessDeniedError(f"no AWS credentials available to read {uri}") from None
    except BotoCoreError as exc:
        raise ServiceUnavailableError(f"S3 request for {uri} failed: {type(exc).__name__}") from None


def read_bytes(uri: str | Path, *, s3_client: Any = None) -> bytes:
    """Read a whole local file or S3 object.

    Raises:
        InputDataError: missing or unreadable.
        AccessDeniedError: S3 refused access.
        ServiceUnavailableError: S3 unreachable.
    """
    uri = str(uri)
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        client = s3_client or make_s3_client()
        with translate_s3_errors(uri):
            return client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError:
        raise InputDataError(f"file not found: {uri}") from None
    except IsADirectoryError:
        raise InputDataError(f"expected a file, got a directory: {uri}") from None
    except PermissionError:
        raise InputDataError(f"file not readable (permission denied): {uri}") from None


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Streaming sha256 of a local file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def walk_tree(root: str | Path, *, skip_top: Collection[str] = ()) -> Iterator[tuple[str, str, os.stat_result, str]]:
    """Every entry under a local directory, never following a symlink and never reading content.

    Args:
        root: The directory.
        skip_top: Names directly under ``root`` to leave out (not descended into either).

    Yields:
        ``(relative posix path, full path, lstat result, kind)`` with kind ``file``, ``dir``,
        ``symlink`` (target inside ``root``), ``escaping_symlink`` (target outside) or ``special``
        (fifo, socket, device). Entries are sorted by name within each directory.
    """
    real_root = os.path.realpath(root)
    inside = real_root.rstrip(os.sep) + os.sep
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if skip_top and os.path.relpath(dirpath, root) == ".":
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            filenames = [f for f in filenames if f not in skip_top]
        for name in sorted([*dirnames, *filenames]):
            full = os.path.join(dirpath, name)
            rel = PurePosixPath(*Path(os.path.relpath(full, root)).parts).as_posix()
            try:
                st = os.lstat(full)
            except FileNotFoundError:  # removed while walking
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(full)
                kind = "symlink" if target == real_root or target.startswith(inside) else "escaping_symlink"
            elif stat.S_ISREG(st.st_mode):
                kind = "file"
            elif stat.S_ISDIR(st.st_mode):
                kind = "dir"
            else:
                kind = "special"
            yield rel, full, st, kind
