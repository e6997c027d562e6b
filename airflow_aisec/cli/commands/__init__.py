"""``aisec`` verbs, one module per concern; each exposes ``register(subparsers)``."""
