"""`python -m qshpc` runs the CLI."""

from qshpc.cli import main

main()
