"""What a pass is, and the registry that finds passes by name.

A pass is a small class with a kebab-case `name` and a module docstring stating what it
requires and what it guarantees. `run(module)` returns a new module and leaves its input
untouched. `@register_pass` makes it available to pipelines (`lpir opt -p name,...`).
"""

from __future__ import annotations

from typing import ClassVar

from lpir.errors import LpirError
from lpir.ir.core import Module

PASSES: dict[str, type[Pass]] = {}


class Pass:
    """Base class: subclasses set `name` and implement `run`."""

    name: ClassVar[str] = ""

    def __init__(self, target: str = "cpu"):
        self.target = target

    def run(self, module: Module) -> Module:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make the pass available by its name."""
    if not cls.name or cls.name in PASSES:
        raise RuntimeError(f"pass name {cls.name!r} is empty or taken")
    PASSES[cls.name] = cls
    return cls


def get_pass(name: str, target: str = "cpu") -> Pass:
    """An instance of the pass called `name`; an unknown name is an `LpirError`."""
    cls = PASSES.get(name)
    if cls is None:
        known = ", ".join(sorted(PASSES))
        raise LpirError(f"unknown pass {name!r}", hint=f"known passes: {known}")
    return cls(target=target)
