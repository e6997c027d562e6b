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
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
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


def any_s3_uri(*uris: Any) -> bool:
    """Whether any of ``uris`` is an ``s3://`` URI (None and empty values are not)."""
    return any(is_s3_uri(str(u)) for u in uris if u)


def s3_client_if_needed(*uris: Any, factory: Callable[[], Any] | None = None) -> Any:
    """An S3 client when any of ``uris`` is ``s3://``, else None: local data needs no client.

    Args:
        uris: Locations the caller is about to read or write (None entries are ignored).
        factory: Builds the client (an Airflow connection's, one for ``--endpoint-url``);
            default :func:`make_s3_client` from the AWS environment.
    """
    if not any_s3_uri(*uris):
        return None
    return factory() if factory is not None else make_s3_client()


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


def read_bytes(uri: str | Path, *, s3_client: Any = None, limit: int, what: str) -> bytes:
    """Read a whole local file or S3 object of at most ``limit`` bytes.

    A local path goes through :func:`~airflow_aisec.core.io.files.read_user_file` (a FIFO, device,
    directory or symlink loop is refused before any byte is read); an S3 object is read at most
    ``limit + 1`` bytes, so neither can exhaust memory.

    Args:
        uri: Local path or ``s3://`` URI.
        s3_client: boto3 S3 client for an ``s3://`` URI (built from the environment when None).
        limit: Largest size accepted, in bytes.
        what: What the file should be, for the message (``"public key"``, ``"GX suite"``, ...).

    Raises:
        InputDataError: missing, unreadable, not a regular file, or larger than ``limit``.
        AccessDeniedError: S3 refused access.
        ServiceUnavailableError: S3 unreachable.
    """
    uri = str(uri)
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        client = s3_client or make_s3_client()
        with translate_s3_errors(uri):
            body = client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
            try:
                data = body.read(limit + 1)
            finally:
                with contextlib.suppress(Exception):
                    body.close()
        if len(data) > limit:
            raise InputDataError(f"{uri}: {what} is larger than {limit} bytes")
        return data
    from airflow_aisec.core.io.files import read_user_file

    return read_user_file(uri, limit=limit, what=what)


@dataclass(frozen=True)
class S3Object:
    """One object under an S3 prefix.

    Attributes:
        key: Full object key.
        size: Size in bytes.
        version_id: Version to download (``"null"`` for an object written before versioning was
            enabled); None downloads whatever is current.
    """

    key: str
    size: int
    version_id: str | None = None


def is_plain_relative_path(path: str) -> bool:
    """Whether ``path`` (an object key below a prefix) maps to a file inside a local directory:
    no empty, ``.`` or ``..`` segment, no leading ``/``, no backslash or NUL."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def s3_prefix(uri: str) -> S3Location:
    """``s3://bucket/prefix`` as a location whose key is empty or ends with ``/`` (a "directory")."""
    loc = parse_s3_uri(uri)
    key = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
    return S3Location(bucket=loc.bucket, key=key)


def list_s3_prefix(uri: str, *, client: Any, versions: bool = False) -> dict[str, S3Object]:
    """The objects under an S3 prefix, by path relative to it.

    "Folder" placeholders (empty keys ending in ``/``) are left out; any other key is listed as
    is, even when it is not a plain relative path (callers decide what that means).

    Args:
        uri: ``s3://bucket/prefix`` (a missing trailing ``/`` is added).
        client: boto3 S3 client.
        versions: List the latest live version of every object (``ListObjectVersions``, needs
            ``s3:ListBucketVersions``) so a download gets exactly the listed bytes; objects whose
            latest version is a delete marker are left out. Otherwise ``ListObjectsV2``, and a
            download gets whatever is current then.

    Raises:
        AccessDeniedError / ServiceUnavailableError / InputDataError: S3 problems.
    """
    loc = s3_prefix(uri)
    objects: dict[str, S3Object] = {}
    with translate_s3_errors(uri):
        if not versions:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
                for obj in page.get("Contents", []) or []:
                    key = obj["Key"]
                    if key.endswith("/") and int(obj.get("Size", 0)) == 0:
                        continue
                    objects[key[len(loc.key):]] = S3Object(key=key, size=int(obj.get("Size", 0)))
            return objects
        deleted: set[str] = set()
        for page in client.get_paginator("list_object_versions").paginate(Bucket=loc.bucket, Prefix=loc.key):
            for marker in page.get("DeleteMarkers", []) or []:
                if marker.get("IsLatest"):
                    deleted.add(marker["Key"])
            for version in page.get("Versions", []) or []:
                if not version.get("IsLatest"):
                    continue
                key = version["Key"]
                if key.endswith("/") and int(version.get("Size", 0)) == 0:
                    continue
                objects[key[len(loc.key):]] = S3Object(
                    key=key, size=int(version.get("Size", 0)), version_id=str(version.get("VersionId") or "null")
                )
    for key in deleted:
        objects.pop(key[len(loc.key):], None)
    return objects


def download_s3_object(client: Any, bucket: str, obj: S3Object, dest: str | Path) -> None:
    """Stream one object (its listed version, if any) to a local file, creating parent directories.

    One GET per object: the bytes written are one version of the object, whatever happens to the
    key meanwhile.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    extra = {"VersionId": obj.version_id} if obj.version_id and obj.version_id != "null" else {}
    with translate_s3_errors(f"{S3_SCHEME}{bucket}/{obj.key}"):
        body = client.get_object(Bucket=bucket, Key=obj.key, **extra)["Body"]
        with open(dest, "wb") as fh:
            fh.writelines(body.iter_chunks(chunk_size=8 * 1024 * 1024))


@contextlib.contextmanager
def download_s3_prefix(
    uri: str,
    *,
    client: Any = None,
    objects: Mapping[str, S3Object] | None = None,
    versions: bool = False,
    max_files: int | None = None,
    dirname: str = "model",
    tmp_prefix: str = "aisec-",
) -> Iterator[tuple[Path, dict[str, S3Object]]]:
    """Download everything under an S3 prefix into a temporary directory, removed afterwards.

    Args:
        uri: ``s3://bucket/prefix``.
        client: boto3 S3 client (default: from the AWS environment).
        objects: What to download, as returned by :func:`list_s3_prefix` (a caller that checked
            the listing first, e.g. against version pins); default: list the prefix now.
        versions: Passed to :func:`list_s3_prefix` when listing here.
        max_files: More objects than this is an input error (nothing is downloaded).
        dirname: Name of the directory the objects land in (inside the temporary directory).
        tmp_prefix: Prefix of the temporary directory's name.

    Yields:
        The local directory (object paths relative to the prefix are kept) and the objects.

    Raises:
        InputDataError: no object under the prefix, more than ``max_files``, or a key that is not a
            plain relative path below the prefix (it could write outside the directory).
        AccessDeniedError / ServiceUnavailableError: S3 problems.
    """
    client = client or make_s3_client()
    loc = s3_prefix(uri)
    listed = dict(objects) if objects is not None else list_s3_prefix(uri, client=client, versions=versions)
    if not listed:
        raise InputDataError(f"no objects under the S3 model prefix: {uri}")
    if max_files is not None and len(listed) > max_files:
        raise InputDataError(f"model has more than {max_files} files (policy max_files)")
    if not all(is_plain_relative_path(rel) for rel in listed):
        raise InputDataError(f"S3 object key is not a plain relative path under {uri}")
    with tempfile.TemporaryDirectory(prefix=tmp_prefix) as tmp:
        root = Path(tmp) / (dirname or "model")
        root.mkdir()
        for rel, obj in sorted(listed.items()):
            download_s3_object(client, loc.bucket, obj, root.joinpath(*rel.split("/")))
        yield root, listed


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
