"""The ``aisec`` command line. ``main`` is the console script; shared verb helpers are in :mod:`.args`,
one module per command noun in :mod:`.commands`."""

from airflow_aisec.cli.app import main

__all__ = ["main"]
