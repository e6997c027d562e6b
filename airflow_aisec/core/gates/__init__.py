"""One package per gate: its check entry point, its private helpers."""
