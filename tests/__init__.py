"""The test suite (a package so ``tests.helpers`` imports the same way from every test module)."""
