"""A module beside the caller (tests/programs/fix31/caller.py): imported by reference."""


def triple(x: int) -> int:
    return 3 * x
