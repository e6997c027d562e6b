"""``moto_server`` for the storage posture tests, with one patch: bucket policies are evaluated as AWS
does for a client that connects over TLS.

Stock moto 5 ignores the ``Condition`` of a bucket policy statement, so the standard TLS-only
statement (``Deny s3:*`` to everyone when ``aws:SecureTransport`` is ``false``) denies every request,
and ``HeadObject`` on a compliant bucket answers 403. Real S3 applies that statement only to plain
http requests; a client over https (every boto3 client by default) is not denied. This launcher drops,
before moto evaluates a bucket policy, exactly the statements whose only condition is
``Bool``/``BoolIfExists`` ``aws:SecureTransport = false``; every other statement (including
unconditional denies) is evaluated by moto unchanged.

Run as ``python -m tests.helpers.moto_tls -H 127.0.0.1 -p PORT`` (same arguments as ``moto_server``).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _insecure_transport_only(statement: Any) -> bool:
    condition = statement.get("Condition") if isinstance(statement, dict) else None
    if not isinstance(condition, dict) or len(condition) != 1:
        return False
    (operator, block), = condition.items()
    if str(operator).lower() not in ("bool", "boolifexists") or not isinstance(block, dict) or len(block) != 1:
        return False
    (key, value), = block.items()
    values = value if isinstance(value, list) else [value]
    return str(key).lower() == "aws:securetransport" and all(str(v).lower() == "false" for v in values)


def patch_moto() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        doc = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = doc.get("Statement")
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in statements if not _insecure_transport_only(s)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**doc, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def main() -> None:
    patch_moto()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
