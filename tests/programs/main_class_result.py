"""Tasks return instances of a dataclass defined in this file (Ray sends them by value)."""

from dataclasses import dataclass

from qshpc import distribute_task, get, save_result


@dataclass
class Point:
    x: int
    y: int


@distribute_task()
def mk(i: int) -> Point:
    return Point(i, i * 2)


pts = get([mk(i) for i in range(3)])
assert all(type(p) is Point for p in pts), [type(p) for p in pts]  # the program's own class
save_result({"s": sum(p.x + p.y for p in pts), "first": pts[0]})
