"""The provider's ``[aisec]`` settings: the only module that reads that configuration section.

Options (declared with description, type, default and example in
:mod:`airflow_aisec.get_provider_info`, so ``airflow config list --section aisec
--include-descriptions`` documents them; ``tests/test_provider_info.py`` keeps both lists equal;
each can be set in ``airflow.cfg`` or as ``AIRFLOW__AISEC__<OPTION>``):

* ``default_policy``: policy file of gates given none (empty: such gates refuse to run);
* ``evidence_location``: the central audit trail, a directory or ``s3://bucket/prefix``;
* ``evidence_aws_conn_id``: Airflow connection for an ``s3://`` audit trail (and ``s3://`` policies);
* ``report_roots``: extra report locations the UI may serve;
* ``platform_policy``: policy file whose ``platform`` rules the cluster policy enforces;
* ``baseline_policy`` / ``baseline_policy_sha256``: the platform's policy floor (and its pin);
* ``policy_roots``: where a gate's policy may come from;
* ``allow_runtime_policy``: whether a policy chosen at run time (template, XComArg) is accepted.
* ``handoff_key``: key that seals the secrets gate's wrapped hand-off and authenticates partition
  summaries in XCom (workers only).

**Snapshot, not live.** The values are taken once per process, as the process had them when it
started: environment variables from the process's exec-time environment (``/proc/self/environ``
on Linux, so ``os.environ[...] = ...`` in a DAG file changes nothing), everything else from the
configuration, read before any DAG file ran. Airflow imports this module while it initialises
(the cluster policy is loaded through the ``airflow.policy`` entry point by
``airflow.settings.initialize()``, before any DAG is parsed), so in the dag-processor, the
scheduler and the workers the snapshot predates DAG code. Importing this module does not import
Airflow: without Airflow loaded, the configuration part is read on first use (and then kept).

:func:`reload` takes a new snapshot from the *current* environment: it exists for tests (the
fixtures call it after changing the environment). A DAG file calling it is code working against
the platform, which is what the out-of-band checks (``aisec audit coverage``) are for.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

#: The configuration section.
SECTION = "aisec"
#: Default Airflow connection of an ``s3://`` audit trail.
DEFAULT_EVIDENCE_AWS_CONN_ID = "aws_default"
_ENV_PREFIX = f"AIRFLOW__{SECTION.upper()}__"
_TRUE = {"1", "true", "t", "yes", "y", "on"}

_lock = threading.RLock()  # re-entrant: reading the configuration may import Airflow, which loads
# the cluster policy, which reads a setting
#: ``AIRFLOW__AISEC__*`` and ``AIRFLOW_HOME`` as the process had them at exec time (or at reload()).
_environ: dict[str, str] = {}
#: Option -> value, resolved once (None: not yet).
_values: dict[str, str] | None = None


def _exec_environ() -> dict[str, str] | None:
    """The environment the process was started with (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[os.fsdecode(key)] = os.fsdecode(value)
    return out


def _capture(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(_ENV_PREFIX) or k == "AIRFLOW_HOME"}


def _options() -> list[str]:
    from airflow_aisec.get_provider_info import get_provider_info

    return list(get_provider_info()["config"][SECTION]["options"])


def _conf() -> Any:
    if "airflow.configuration" in sys.modules:  # Airflow is loading (or loaded): its parser is there
        from airflow.configuration import conf

        return conf
    try:
        from airflow.sdk import conf
    except ImportError:  # an Airflow without the task SDK parser
        from airflow.configuration import conf
    return conf


@contextlib.contextmanager
def _without_later_environment() -> Iterator[None]:
    """Hide ``AIRFLOW__AISEC__*`` variables set after the snapshot's environment was taken."""
    hidden = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIX) and _environ.get(k) != v}
    for key in hidden:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in hidden.items():
            os.environ.setdefault(key, value)


def _resolve() -> dict[str, str]:
    global _values
    values = _values
    if values is not None:
        return values
    with _lock:
        if _values is not None:
            return _values
        resolved: dict[str, str] = {}
        options = _options()
        from_config = [o for o in options if env_var(o) not in _environ]
        if from_config:
            conf = _conf()
            with _without_later_environment():
                for option in from_config:
                    resolved[option] = conf.get(SECTION, option, fallback="") or ""
        for option in options:
            if env_var(option) in _environ:
                resolved[option] = _environ[env_var(option)]
        _values = resolved
        return resolved


def reload() -> None:
    """Take a new snapshot from the current ``os.environ`` and configuration (test fixtures only).

    Production code never calls it: settings are what the process started with.
    """
    global _values, _environ
    with _lock:
        _environ = _capture(os.environ)
        _values = None
    if "airflow.configuration" in sys.modules:
        _resolve()


def _snapshot_at_import() -> None:
    global _environ
    exec_env = _exec_environ()
    _environ = _capture(exec_env if exec_env is not None else os.environ)
    if "airflow.configuration" in sys.modules:  # loaded by Airflow's initialisation: resolve now
        _resolve()


def _get(option: str, fallback: str = "") -> str:
    """An option's value from the snapshot (``fallback`` when unset or empty)."""
    values = _resolve()
    value = values.get(option)
    if value is None:  # not declared in get_provider_info: resolved on first use, then kept as well
        with _lock:
            if env_var(option) in _environ:
                value = _environ[env_var(option)]
            else:
                with _without_later_environment():
                    value = _conf().get(SECTION, option, fallback="") or ""
            values[option] = value
    return value or fallback


def env_var(option: str) -> str:
    """The environment variable Airflow reads for ``[aisec] <option>``."""
    return f"{_ENV_PREFIX}{option.upper()}"


def _list(option: str) -> list[str]:
    return [r.strip() for r in _get(option).split(",") if r.strip()]


def default_policy() -> str:
    """``[aisec] default_policy``: policy file of gates given none, ``""`` when unset."""
    return _get("default_policy").strip()


def evidence_location() -> str:
    """``[aisec] evidence_location``, else ``$AIRFLOW_HOME/aisec/evidence`` (as the process started)."""
    configured = _get("evidence_location").strip()
    if configured:
        return configured
    home = _environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "aisec", "evidence")


def evidence_aws_conn_id() -> str:
    """``[aisec] evidence_aws_conn_id`` (default ``aws_default``)."""
    return _get("evidence_aws_conn_id", DEFAULT_EVIDENCE_AWS_CONN_ID).strip()


def report_roots() -> list[str]:
    """``[aisec] report_roots``: comma-separated directories or ``s3://`` prefixes, blanks dropped."""
    return _list("report_roots")


def platform_policy() -> str:
    """``[aisec] platform_policy``, stripped; ``""`` means platform enforcement is off."""
    return _get("platform_policy").strip()


def baseline_policy() -> str:
    """``[aisec] baseline_policy``: the platform's policy floor (file or ``s3://``); ``""``: none."""
    return _get("baseline_policy").strip()


def baseline_policy_sha256() -> str:
    """``[aisec] baseline_policy_sha256``: pin of the baseline's sha256 (lower-case hex), ``""``: none."""
    return _get("baseline_policy_sha256").strip().lower()


def policy_roots() -> list[str]:
    """``[aisec] policy_roots``: directories or ``s3://`` prefixes a gate's policy must resolve under."""
    return _list("policy_roots")


def allow_runtime_policy() -> bool:
    """``[aisec] allow_runtime_policy``: accept a policy chosen by a template or an XComArg."""
    return _get("allow_runtime_policy").strip().lower() in _TRUE


def handoff_key() -> str:
    """``[aisec] handoff_key``: key(s) sealing the secrets hand-off and authenticating partition summaries in
    XCom (``""``: unset, those gates refuse)."""
    return _get("handoff_key").strip()


_snapshot_at_import()
