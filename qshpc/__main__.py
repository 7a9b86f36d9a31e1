"""`python -m qshpc` runs the CLI."""

from qshpc import _timeline

_timeline.mark("qshpc")

from qshpc.cli import main  # noqa: E402

main()
