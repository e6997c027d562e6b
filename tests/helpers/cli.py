"""Running the ``aisec`` console script as a user would: a subprocess, no stdin."""

from __future__ import annotations

import os
import subprocess

from tests.helpers.env import VENV_BIN


def run_aisec(
    *args: str, env: dict | None = None, timeout: float = 300, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``aisec *args`` with the current environment plus ``env``; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(VENV_BIN / "aisec"), *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
