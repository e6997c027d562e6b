"""What the endpoint gate's CLI and operator tests probe the serving processes of ``serving`` with: a test
CA with server certificates, and a policy whose ``endpoint`` section covers every check."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.serving import Pki, make_pki

#: The ``endpoint`` section's checks, in the paths the serving app (``serving_app``) exposes.
ENDPOINT_CHECKS = """\
  auth: {paths: ["POST /v1/predict", "/v1/models"]}
  health_path: /healthz
  openapi_path: /openapi.json
  forbidden_paths: [/model, /.git/config, /debug]
  rate_limit: {burst: 30}
  body_limit: {path: /v1/predict, max_bytes: 1048576}
"""


def write_endpoint_setup(root: Path, name: str, *, extra: str = "") -> tuple[Pki, Path]:
    """``root/pki`` (:func:`make_pki`) and ``root/endpoint.yaml``: policy ``name`` with :data:`ENDPOINT_CHECKS`
    after the ``endpoint`` lines in ``extra`` (indented by two spaces, each ending in a newline)."""
    pki = make_pki(root / "pki")
    policy = root / "endpoint.yaml"
    policy.write_text(f"\nname: {name}\nendpoint:\n{extra}{ENDPOINT_CHECKS}")
    return pki, policy
