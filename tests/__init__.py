"""The test suite, a package: every test imports its helpers as `tests.support.<stage>`
(pyproject.toml's pytest `pythonpath` puts the repository root on sys.path)."""
