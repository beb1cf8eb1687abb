"""The ``calopt`` command line: one module per command group (DESIGN.md, command line)."""
