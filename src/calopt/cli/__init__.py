"""The ``calopt`` command line: one module per command group (docs/cli.md)."""
