"""`aisec source` verbs (land with their issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """No verbs yet."""
