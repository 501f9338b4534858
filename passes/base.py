"""What a pass is, and the registry that finds passes by name.

A pass is a small class with a kebab-case `name` and a module docstring stating what it
requires and what it guarantees; `stage` and `needs_layouts` say the part of that which a
pipeline checks before running it (`check_input`: a pass asked for at the wrong stage is an
error naming the pass and the stage it needs, not IR it was never meant to see). `run(module)`
returns a new module and leaves its input untouched. `@register_pass` makes it available to
pipelines (`lpir opt -p name,...`).
"""

from __future__ import annotations

from typing import ClassVar

from lpir.errors import LpirError
from lpir.ir.core import Kernel, Module, Value
from lpir.ir.types import TileType

PASSES: dict[str, type[Pass]] = {}


class Pass:
    """Base class: subclasses set `name` and implement `run`."""

    name: ClassVar[str] = ""
    # the IR the pass runs on: "tile" or "thread" (None: either)
    stage: ClassVar[str | None] = None
    # tile IR whose every register tile has a layout (after layout-selection)
    needs_layouts: ClassVar[bool] = False

    def __init__(self, target: str = "cpu"):
        self.target = target

    def run(self, module: Module) -> Module:
        raise NotImplementedError

    def check_input(self, module: Module) -> None:
        """Raise an `LpirError` where a kernel of `module` is not IR this pass runs on."""
        for kernel in module.kernels:
            if self.stage is not None and kernel.stage != self.stage:
                raise self._wrong_stage(kernel)
            if self.needs_layouts:
                missing = _tile_without_layout(kernel)
                if missing is not None:
                    raise self._no_layout(kernel, missing)

    def _wrong_stage(self, kernel: Kernel) -> LpirError:
        if kernel.stage == "thread":
            others = ", ".join(name for name, cls in sorted(PASSES.items()) if cls.stage != "tile")
            return LpirError(
                f"pass {self.name} runs on tile IR, but kernel @{kernel.name} is thread IR "
                "(stage(thread)): it is lowered to threads already",
                kernel.location,
                f"leave {self.name} out; the passes that run on thread IR are {others}",
            )
        before = "layout-selection,lower-to-threads"
        return LpirError(
            f"pass {self.name} runs on thread IR, but kernel @{kernel.name} is tile IR: "
            "lower-to-threads makes thread IR, after layout-selection",
            kernel.location,
            f"lower it first (-p {before},{self.name}), or run the target's whole "
            "pipeline (lpir opt --print-after-all)",
        )

    def _no_layout(self, kernel: Kernel, value: Value) -> LpirError:
        owner = value.owner
        tile = f"%{value.name_hint}: {value.type}" if value.name_hint else f"the {value.type} here"
        return LpirError(
            f"pass {self.name} runs on tile IR whose register tiles have layouts, but "
            f"{tile} (kernel @{kernel.name}) has none",
            getattr(owner, "location", None) or kernel.location,
            f"run layout-selection before it (-p layout-selection,{self.name}), or give every "
            "register tile a layout (IR text printed after layout-selection has them)",
        )

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


def _tile_without_layout(kernel: Kernel) -> Value | None:
    """The first register tile of `kernel`, in program order, that has no layout."""
    for op in kernel.walk():
        values = [*op.results, *(arg for region in op.regions for arg in region.args)]
        for value in values:
            if isinstance(value.type, TileType) and value.type.layout is None:
                return value
    return None


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
