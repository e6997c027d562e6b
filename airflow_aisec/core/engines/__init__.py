"""Engines that run a gate's per-partition core somewhere else than this process (Spark).

Each engine module imports its engine lazily, inside functions: importing this package costs nothing.
"""
