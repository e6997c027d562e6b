"""One module per gate: that gate's policy section schema, and nothing else (no engine imports)."""
