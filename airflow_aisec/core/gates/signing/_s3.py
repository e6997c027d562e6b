"""Models on S3: bucket versioning, the object versions pinned at signing, and a local copy to hash.

On S3 (``s3://bucket/prefix/``) the object versions seen at signing are pinned inside the signed
statement (an extra predicate field ``aisec``, ignored by other verifiers); verification refuses
objects added, deleted or overwritten since, and hashes exactly the pinned versions.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_aisec.core.gates.signing._errors import listing, tampered
from airflow_aisec.core.gates.signing._locations import Location
from airflow_aisec.core.io.storage import (
    S3Object,
    download_s3_object,
    is_plain_relative_path,
    list_s3_prefix,
    translate_s3_errors,
)
from airflow_aisec.exceptions import InputDataError

#: Extra predicate field carrying airflow-aisec data (S3 version pins) inside the signed statement.
AISEC_PREDICATE_KEY = "aisec"


def bucket_versioned(client: Any, bucket: str) -> bool:
    with translate_s3_errors(f"s3://{bucket}"):
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    return status == "Enabled"


def pins_predicate(model: Location, objects: dict[str, S3Object]) -> dict[str, Any]:
    """The extra predicate field that pins every object version of an S3 model in the statement."""
    return {AISEC_PREDICATE_KEY: {"s3": {
        "bucket": model.bucket,
        "prefix": model.key,
        "versions": {rel: str(obj.version_id) for rel, obj in sorted(objects.items())},
    }}}


def _check_pins(model: Location, objects: dict[str, S3Object], pins: dict[str, str]) -> None:
    added = sorted(set(objects) - set(pins))
    removed = sorted(set(pins) - set(objects))
    overwritten = sorted(p for p in set(objects) & set(pins) if objects[p].version_id != pins[p])
    if not (added or removed or overwritten):
        return
    parts, location = [], {"model": model.uri}
    if overwritten:
        parts.append(f"{len(overwritten)} object(s) overwritten since signing [{listing(overwritten)}]")
        location["overwritten"] = overwritten[:50]
    if added:
        parts.append(f"{len(added)} object(s) added [{listing(added)}]")
        location["added"] = added[:50]
    if removed:
        parts.append(f"{len(removed)} pinned object(s) missing [{listing(removed)}]")
        location["removed"] = removed[:50]
    reason = "s3_version_changed" if overwritten and not (added or removed) else "s3_objects_changed"
    raise tampered("S3 model differs from the object versions pinned at signing: " + "; ".join(parts),
                   reason, **location)


@contextlib.contextmanager
def materialized_model(
    model: Location, client: Any, *, pins: dict[str, str] | None, check_pins: bool
) -> Iterator[tuple[Path, dict[str, S3Object]]]:
    """A local directory with the model: the path itself, or a temp copy of the S3 prefix.

    With ``check_pins`` the S3 objects must be exactly the pinned versions (ModelTamperedError).
    """
    if not model.s3:
        assert model.path is not None
        yield model.path, {}
        return
    objects = list_s3_prefix(model.uri, client=client, versions=True)
    if check_pins and pins is not None:
        _check_pins(model, objects, pins)
    unsafe = sorted(rel for rel in objects if not is_plain_relative_path(rel))
    if unsafe:
        raise tampered(f"S3 model has object keys that are not plain relative paths: {listing(unsafe)}",
                       "unsafe_object_key", model=model.uri)
    if not objects:
        raise InputDataError(f"no objects under the S3 model prefix: {model.uri}")
    with tempfile.TemporaryDirectory(prefix="aisec-model-") as tmp:
        root = Path(tmp) / (model.name or "model")
        root.mkdir()
        for rel, obj in sorted(objects.items()):
            download_s3_object(client, model.bucket, obj, root.joinpath(*rel.split("/")))
        yield root, objects
