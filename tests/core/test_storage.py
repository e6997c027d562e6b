"""Shared storage helpers: the "client only for s3://" rule and the S3 prefix downloader."""

from __future__ import annotations

import uuid

import pytest

from airflow_aisec.core.io.storage import (
    any_s3_uri,
    download_s3_prefix,
    is_plain_relative_path,
    list_s3_prefix,
    s3_client_if_needed,
)
from airflow_aisec.exceptions import InputDataError


def test_client_only_when_a_location_is_on_s3():
    made = []

    def factory():
        made.append(1)
        return "client"

    assert not any_s3_uri(None, "", "/data/x.csv", "S3://upper/is-not-s3")
    assert s3_client_if_needed("/data/x.csv", None, factory=factory) is None
    assert made == []  # no client (no connection lookup) for local data
    assert s3_client_if_needed(None, "s3://b/k", factory=factory) == "client"
    assert made == [1]


@pytest.mark.parametrize("path,ok", [
    ("a", True), ("a/b.bin", True), ("a/.hidden", True),
    ("", False), ("/a", False), ("a//b", False), ("a/./b", False), ("a/../b", False), ("..", False),
    ("a\\b", False), ("a\x00b", False), ("dir/", False),
])
def test_plain_relative_paths(path, ok):
    assert is_plain_relative_path(path) is ok


@pytest.fixture
def bucket(s3_server):
    client = s3_server.client()
    name = f"storage-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.mark.integration
def test_prefix_download_keeps_the_layout_and_skips_folder_placeholders(bucket):
    client, name = bucket
    client.put_object(Bucket=name, Key="m/", Body=b"")  # console-style "folder"
    client.put_object(Bucket=name, Key="m/a.bin", Body=b"A")
    client.put_object(Bucket=name, Key="m/sub/b.bin", Body=b"BB")
    client.put_object(Bucket=name, Key="mx/other.bin", Body=b"not under m/")
    listed = list_s3_prefix(f"s3://{name}/m", client=client)
    assert {rel: obj.size for rel, obj in listed.items()} == {"a.bin": 1, "sub/b.bin": 2}
    assert all(obj.version_id is None for obj in listed.values())
    with download_s3_prefix(f"s3://{name}/m", client=client, dirname="model") as (root, objects):
        assert root.name == "model" and set(objects) == {"a.bin", "sub/b.bin"}
        assert (root / "a.bin").read_bytes() == b"A" and (root / "sub" / "b.bin").read_bytes() == b"BB"
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        assert files == ["a.bin", "sub/b.bin"]
    assert not root.exists()  # the temporary copy is gone afterwards


@pytest.mark.integration
def test_prefix_download_fetches_the_listed_versions(bucket):
    client, name = bucket
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=name, Key="m/w.bin", Body=b"v1")
    client.put_object(Bucket=name, Key="m/gone.bin", Body=b"x")
    client.delete_object(Bucket=name, Key="m/gone.bin")  # latest version is a delete marker
    listed = list_s3_prefix(f"s3://{name}/m/", client=client, versions=True)
    assert set(listed) == {"w.bin"} and listed["w.bin"].version_id not in (None, "null")
    client.put_object(Bucket=name, Key="m/w.bin", Body=b"v2")  # overwritten after listing
    with download_s3_prefix(f"s3://{name}/m/", client=client, objects=listed) as (root, _):
        assert (root / "w.bin").read_bytes() == b"v1"


@pytest.mark.integration
def test_prefix_download_refuses_empty_oversized_and_escaping_prefixes(bucket):
    client, name = bucket
    with pytest.raises(InputDataError, match="no objects"), \
            download_s3_prefix(f"s3://{name}/nothing/", client=client):
        pass
    client.put_object(Bucket=name, Key="big/1", Body=b"1")
    client.put_object(Bucket=name, Key="big/2", Body=b"2")
    with pytest.raises(InputDataError, match="more than 1 files"), \
            download_s3_prefix(f"s3://{name}/big", client=client, max_files=1):
        pass
    client.put_object(Bucket=name, Key="esc/../outside.bin", Body=b"x")
    with pytest.raises(InputDataError, match="not a plain relative path"), \
            download_s3_prefix(f"s3://{name}/esc", client=client):
        pass
