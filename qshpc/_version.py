"""The qshpc version, in a module of its own (no imports: every layer may read it)."""

__version__ = "0.1.0"
