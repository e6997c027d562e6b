"""Fuzz suite (issue 12, item 9): seeded hypothesis runs of the real CLI over every verb's inputs.

Select it with ``pytest -m fuzz tests/fuzz``. Every test asserts the CLI contract: an exit code in
{0, 1, 2, 3} (never 4, an internal error), no Python traceback in the output, never 0 on a planted
violation, and a bounded time (pytest-timeout).
"""
