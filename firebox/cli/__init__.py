"""The `firebox` command line (entry point `firebox.cli.main:main`)."""
