"""Trigger of the deferrable :class:`~airflow_aisec.sensors.signing.ModelSignatureSensor`.

It only waits: it polls until the signature exists (local file or ``s3://`` object) and fires one
event. It never decides a verdict; the sensor re-checks and verifies synchronously when it resumes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

#: Event statuses: ``found`` (the signature exists) or ``error`` (waiting cannot go on: access denied,
#: bad location). An unreachable S3 endpoint or a slow probe is "not there yet", as in poke mode.
FOUND = "found"
ERROR = "error"

# botocore's own bounds for one probe (the whole wait is bounded by the sensor's timeout).
_S3_CONFIG = {"connect_timeout": 10, "read_timeout": 20, "retries": {"max_attempts": 2, "mode": "standard"}}


class ModelSignatureTrigger(BaseTrigger):
    """Fire once when ``signature`` exists.

    Args:
        signature: Local path or ``s3://bucket/key`` of the signature bundle.
        aws_conn_id: Airflow AWS connection for an ``s3://`` signature.
        poke_interval: Seconds between probes.
        probe_timeout: Upper bound in seconds of one probe (a slower probe counts as "not yet").
    """

    def __init__(
        self,
        *,
        signature: str,
        aws_conn_id: str | None = "aws_default",
        poke_interval: float = 30.0,
        probe_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.signature = str(signature)
        self.aws_conn_id = aws_conn_id
        self.poke_interval = float(poke_interval)
        self.probe_timeout = float(probe_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "signature": self.signature,
                "aws_conn_id": self.aws_conn_id,
                "poke_interval": self.poke_interval,
                "probe_timeout": self.probe_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

        while True:
            try:
                found = await asyncio.wait_for(self.exists(), timeout=self.probe_timeout)
            except (TimeoutError, ServiceUnavailableError) as exc:
                self.log.warning("signature %s: not reachable yet (%s)", self.signature, type(exc).__name__)
                found = False
            except AisecError as exc:  # denied, missing credentials, bad location: waiting cannot help
                yield TriggerEvent({"status": ERROR, "signature": self.signature, "message": str(exc)})
                return
            if found:
                self.log.info("signature %s found", self.signature)
                yield TriggerEvent({"status": FOUND, "signature": self.signature})
                return
            self.log.info("signature %s not found yet", self.signature)
            await asyncio.sleep(self.poke_interval)

    async def exists(self) -> bool:
        """Whether the signature exists now (one probe).

        Raises:
            AccessDeniedError: an S3 403 or missing credentials.
            ServiceUnavailableError: the S3 endpoint is unreachable.
        """
        from airflow_aisec.core.io.storage import is_s3_uri

        if not is_s3_uri(self.signature):
            return await asyncio.to_thread(os.path.isfile, self.signature)
        try:
            import aiobotocore  # noqa: F401
        except ImportError:
            return await asyncio.to_thread(self._s3_exists_sync)
        return await self._s3_exists_async()

    def _hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from botocore.config import Config

        return S3Hook(aws_conn_id=self.aws_conn_id, config=Config(**_S3_CONFIG))

    def _s3_exists_sync(self) -> bool:
        from airflow_aisec.core.io.storage import parse_s3_uri, translate_s3_errors
        from airflow_aisec.exceptions import InputDataError

        loc = parse_s3_uri(self.signature)
        try:
            with translate_s3_errors(self.signature):
                self._hook().get_conn().head_object(Bucket=loc.bucket, Key=loc.key)
        except InputDataError:  # not found (yet)
            return False
        return True

    async def _s3_exists_async(self) -> bool:
        from airflow_aisec.core.io.storage import parse_s3_uri, translate_s3_errors
        from airflow_aisec.exceptions import InputDataError

        loc = parse_s3_uri(self.signature)
        hook = await asyncio.to_thread(self._hook)  # reading the connection may block
        try:
            with translate_s3_errors(self.signature):
                async with await hook.get_async_conn() as client:
                    await client.head_object(Bucket=loc.bucket, Key=loc.key)
        except InputDataError:
            return False
        return True
