"""Shared I/O services: storage (local and S3), tabular datasets, the Vault client."""
