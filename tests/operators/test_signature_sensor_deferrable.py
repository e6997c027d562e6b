"""Deferrable ``ModelSignatureSensor`` and its trigger, without a triggerer (the real one runs in
tests/integration/test_triggerer.py): serialize() round trip, polling local files and a real S3 API
(moto), an unreachable endpoint as "not yet", and a sensor that never trusts the trigger's event."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers.airflow import task_context
from tests.helpers.net import free_port

TRIGGER_PATH = "airflow_aisec.triggers.signing.ModelSignatureTrigger"


def _sensor(tmp_path, **kwargs):
    from airflow_aisec.sensors.signing import ModelSignatureSensor

    return ModelSignatureSensor(task_id="wait_sig", model=str(tmp_path / "model"), public_key=str(tmp_path / "k.pub"),
                                **kwargs)


async def _first_event(trigger, *, on_probe=None, max_probes=50):
    """Run the trigger to its first event, calling ``on_probe(n)`` after each probe; None if it did not fire."""
    probes = 0
    original = trigger.exists

    async def counting():
        nonlocal probes
        try:
            return await original()
        finally:
            probes += 1
            if on_probe is not None:
                on_probe(probes)
            if probes >= max_probes:
                raise asyncio.CancelledError

    trigger.exists = counting
    try:
        async for event in trigger.run():
            return event.payload, probes
    except asyncio.CancelledError:
        return None, probes
    return None, probes


def test_serialize_round_trips_through_the_trigger_table_encoding():
    from airflow.models.trigger import Trigger
    from airflow.sdk.module_loading import import_string

    from airflow_aisec.triggers.signing import ModelSignatureTrigger

    trigger = ModelSignatureTrigger(signature="s3://models/m.sig", aws_conn_id="aws_models", poke_interval=7,
                                    probe_timeout=12)
    classpath, kwargs = trigger.serialize()
    assert classpath == TRIGGER_PATH
    row = Trigger.from_object(trigger)  # what the triggerer stores and reads back (encrypted kwargs)
    rebuilt = import_string(row.classpath)(**row.kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {"signature": "s3://models/m.sig", "aws_conn_id": "aws_models", "poke_interval": 7.0,
                      "probe_timeout": 12.0}
    json.dumps(kwargs)  # plain JSON values only


def test_trigger_fires_once_the_local_signature_appears(tmp_path):
    from airflow_aisec.triggers.signing import ModelSignatureTrigger

    sig = tmp_path / "model.sig"
    trigger = ModelSignatureTrigger(signature=str(sig), poke_interval=0)
    payload, probes = asyncio.run(_first_event(
        trigger, on_probe=lambda n: n == 3 and sig.write_text("{}")))
    assert payload == {"status": "found", "signature": str(sig)}
    assert probes == 4  # three "not yet", then found


def test_trigger_polls_s3_and_fires_when_the_object_appears(s3_server):
    from airflow_aisec.triggers.signing import ModelSignatureTrigger

    client = s3_server.client()
    client.create_bucket(Bucket="deferred-sigs")
    uri = "s3://deferred-sigs/models/m.sig"
    trigger = ModelSignatureTrigger(signature=uri, poke_interval=0)
    payload, probes = asyncio.run(_first_event(
        trigger, on_probe=lambda n: n == 2 and client.put_object(Bucket="deferred-sigs", Key="models/m.sig",
                                                                 Body=b"{}")))
    assert payload == {"status": "found", "signature": uri}
    assert probes == 3


def test_trigger_treats_an_unreachable_s3_endpoint_as_not_yet(monkeypatch):
    from airflow_aisec.triggers.signing import ModelSignatureTrigger

    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_NOWHERE", json.dumps(conn))
    trigger = ModelSignatureTrigger(signature="s3://b/m.sig", aws_conn_id="aws_nowhere", poke_interval=0)
    payload, probes = asyncio.run(_first_event(trigger, max_probes=2))
    assert payload is None and probes == 2  # kept waiting, no event (neither found nor a verdict)


def test_deferrable_defaults_to_operators_default_deferrable(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert _sensor(tmp_path).deferrable is True
    assert _sensor(tmp_path, deferrable=False).deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert _sensor(tmp_path).deferrable is False


def test_execute_defers_to_the_trigger_while_the_signature_is_missing(tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    sensor = _sensor(tmp_path, deferrable=True, poke_interval=5, timeout=600)
    context = task_context()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context)
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout.total_seconds() == 600
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == TRIGGER_PATH
    assert kwargs["signature"] == str(tmp_path / "model.sig") and kwargs["poke_interval"] == 5.0
    context["ti"].xcom_push.assert_not_called()  # no verdict while waiting


@pytest.mark.parametrize("event", [
    {"status": "found", "signature": "ignored"},  # the trigger says so, the worker finds nothing
    {"status": "error", "signature": "x", "message": "access denied to s3://b/m.sig (403)"},
    None,
])
def test_execute_complete_does_not_trust_the_event(tmp_path, event):
    from airflow.sdk.exceptions import AirflowFailException

    sensor = _sensor(tmp_path, deferrable=True)
    context = task_context()
    with pytest.raises(AirflowFailException):
        sensor.execute_complete(context, event)
    context["ti"].xcom_push.assert_not_called()  # and never a pass
