"""Kernels given as IR text (`.ir`): already specialized, they run as they are.

`lpir.compile("k.ir", target=...)` (and so `lpir run` and `lpir emit`), or `lpir.compile(text)`
of a string that starts `kernel @` (what `Kernel.ir()` prints), parses the text,
verifies it and sends a tile-IR kernel through the target's pipeline; a thread-IR kernel
(`stage(thread)`) goes straight to the thread interpreter or a backend. Its parameters are the
values the text records: `-D NAME=VALUE` and keyword parameters apply to kernel sources (.lp)
only and are an error here, as they would otherwise be ignored. `--kernel` (`kernel=`) picks a
kernel of a text that holds several.

Calls check the number of arguments and each tensor's shape and dtype against the IR types.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lpir.errors import ArgumentError, LpirError, SourceLocation
from lpir.ir.core import Kernel as IRKernelNode
from lpir.ir.core import Module
from lpir.ir.grid import is_empty
from lpir.ir.ops import StoreBitsOp, StoreOp, StoreThreadOp
from lpir.ir.parser import parse
from lpir.ir.types import GlobalType
from lpir.ir.verifier import verify
from lpir.language.ast import Program
from lpir.language.syntax import parse_program
from lpir.runtime import arguments as args_
from lpir.runtime.foreign_arrays import host_view, is_foreign_array
from lpir.runtime.source_files import read_source_file
from lpir.runtime.specialization import (
    Specialization,
    attach_runner,
    empty_launch,
    load_target,
    pipeline_stages,
    run_pipeline,
)
from lpir.runtime.stages import StageTexts

IR_SUFFIXES = (".ir", ".lpir")


def is_ir_path(path: str | os.PathLike) -> bool:
    """Whether `path` names an IR text file (by its suffix) rather than a kernel source."""
    return Path(str(path)).suffix in IR_SUFFIXES and "\n" not in str(path)


def looks_like_ir_text(text: str) -> bool:
    """Whether source text given as a string is IR (what `Kernel.ir()` and `lpir opt`
    print): its first line that is not blank or a `//` comment starts `kernel @`."""
    for line in text.removeprefix("\ufeff").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("//"):
            return IR_KERNEL_START.match(stripped) is not None
    return False


IR_KERNEL_START = re.compile(r"kernel\s+@")


def parse_source(text: str, file: str) -> Program:
    """The kernel source `text` of `file` parsed; where it does not parse but reads as IR text
    (a file not named .ir), a syntax error would point at the '@' of `kernel @name`: the error
    says to name the file .ir instead."""
    try:
        return parse_program(text, file)
    except LpirError as error:
        if file == "<source>" or not looks_like_ir_text(text):
            raise
        name = Path(file)
        raise LpirError(
            f"{name.name} holds IR text, but only files named {' or '.join(IR_SUFFIXES)} "
            "are read as IR",
            error.location,
            f"rename it {name.with_suffix('.ir').name}",
        ) from None


def load_ir(
    path: str | os.PathLike, params: dict | None = None, kernel: str | None = None
) -> Module:
    """The verified module of an IR file; only kernel `kernel` when it is given.

    Raises:
        LpirError: parameters were given (IR text is already specialized), there is no kernel
            of that name, or the text does not parse or verify.
    """
    file = Path(str(path))
    _refuse_parameters(params, file.name)
    if not file.exists():
        raise LpirError(f"no such file: {path}")
    return _kernels_named(read_source_file(file), str(file), file.name, kernel)


def _refuse_parameters(params: dict | None, name: str) -> None:
    if params:
        given = ", ".join(params)
        raise LpirError(
            f"parameters ({given}) apply to kernel sources (.lp); {name} is IR text, "
            "already specialized",
            hint="set parameters when lowering the .lp source, or edit the values in the IR",
        )


def _kernels_named(text: str, file: str, name: str, kernel: str | None) -> Module:
    """The verified module of IR `text`, or only its kernel called `kernel`."""
    module = verify(parse(text.removeprefix("\ufeff"), file))
    if kernel is None:
        return module
    names = [k.name for k in module.kernels]
    if kernel not in names:
        raise LpirError(
            f"no kernel named {kernel!r} in {name}",
            hint=f"it holds {', '.join(names) or 'no kernel'}",
        )
    return Module([k for k in module.kernels if k.name == kernel])


def compile_ir(path: str | os.PathLike, target: str, kernel: str | None, params: dict) -> IRKernel:
    """An `IRKernel` for the one kernel of an IR file (or the one called `kernel`)."""
    return _one_kernel(load_ir(path, params, kernel), Path(str(path)).name, target)


def compile_ir_text(text: str, target: str, kernel: str | None, params: dict) -> IRKernel:
    """An `IRKernel` for the one kernel of IR text given as a string (or the one called
    `kernel`)."""
    _refuse_parameters(params, "the string")
    return _one_kernel(_kernels_named(text, "<ir>", "the string", kernel), "the string", target)


def _one_kernel(module: Module, name: str, target: str) -> IRKernel:
    if not module.kernels:
        raise LpirError(
            f"{name} holds no kernel",
            hint="write a kernel in it, as `lpir opt` and Kernel.ir() print one: "
            "`kernel @name[...](...) blocks(...) threads(...) { ... }`",
        )
    if len(module.kernels) != 1:
        names = ", ".join(k.name for k in module.kernels) or "none"
        raise LpirError(
            f"{name} holds {len(module.kernels)} kernels ({names})",
            hint="choose one with --kernel NAME (kernel=NAME)",
        )
    return IRKernel(module, target)


def _stored_names(module: Module) -> set[str]:
    kernel = module.kernels[0]
    names = {id(a): a.name_hint or "" for a in kernel.args}
    stores = (StoreOp, StoreThreadOp, StoreBitsOp)
    return {
        names[id(op.operands[0])]
        for op in kernel.walk()
        if isinstance(op, stores) and id(op.operands[0]) in names
    }


def build_ir_specialization(module: Module, target: str) -> Specialization:
    """`module` (verified when parsed) compiled for `target`: tile IR through its pipeline,
    thread IR as it is."""
    kernel = module.kernels[0]
    if is_empty(kernel.grid):  # an empty call (an empty batch): it runs no block on any target
        return empty_launch(dict(kernel.params), module)
    if kernel.stage == "tile":
        final = verify(run_pipeline(module, target))
        stages: Mapping[str, str] = pipeline_stages(module, final, target)
    elif target == "interp":
        raise LpirError(
            f"kernel {kernel.name} is thread IR; the reference interpreter runs tile IR",
            kernel.location,
            "run it with --target threads (the thread-IR interpreter) or cpu",
        )
    else:
        final = module
        stages = StageTexts(module, module)
    spec = Specialization(dict(kernel.params), stages, final, _stored_names(module))
    attach_runner(spec, target)
    return spec


class IRKernel:
    """A kernel compiled from IR text; call it with arrays like an `lpir.Kernel`."""

    def __init__(self, module: Module, target: str):
        self.target = target
        load_target(target)
        self.kernel_node: IRKernelNode = module.kernels[0]
        self.spec = build_ir_specialization(module, target)
        self.last = self.spec

    @property
    def name(self) -> str:
        return self.kernel_node.name

    @property
    def __signature__(self) -> inspect.Signature:
        """The call's signature (`inspect.signature(kernel)`, `help`): the declared arguments."""
        return args_.call_signature([arg.name_hint or "?" for arg in self.kernel_node.args])

    def __repr__(self) -> str:
        names = [arg.name_hint or "?" for arg in self.kernel_node.args]
        return args_.kernel_repr("IRKernel", self.name, names, self.target, self.params)

    def __reduce__(self) -> tuple:
        """Pickle (and copy) the IR text and the target; unpickling compiles them anew, as
        `Kernel.__reduce__` does."""
        return _rebuild_ir_kernel, (self.spec.stages["source"], self.target)

    @property
    def params(self) -> dict:
        return dict(self.kernel_node.params)

    def specialize(self, arguments: Any = None) -> Specialization:
        return self.spec

    def __call__(self, /, *arguments: Any, **by_name: Any) -> None:
        """Run the kernel on `arguments`, in the order of its declaration, or by name."""
        args = self.kernel_node.args
        where = self.kernel_node.location
        wheres: list[SourceLocation | None] = [where] * len(args)
        if self.kernel_node.argument_locations:  # parsed IR text knows each declaration's place
            wheres = list(self.kernel_node.argument_locations)
        if by_name:
            arg_names = [arg.name_hint or "?" for arg in args]
            arguments = args_.bound_by_name(
                self.name, arg_names, [], arguments, by_name, where, wheres
            )
        if len(arguments) != len(args):
            names = ", ".join(a.name_hint or "?" for a in args)
            raise ArgumentError(
                f"{self.name} takes {len(args)} arguments ({names}), got {len(arguments)}",
                where,
                hint=f"call {self.name}({names})",
            )
        prepared, shapes = [], []
        for arg, value, where in zip(args, arguments, wheres):
            declared = args_.NamedArgument(arg.name_hint or "?")
            dt = arg.type.dtype
            if isinstance(arg.type, GlobalType):
                view = args_.device_view_of(value)
                if view is None and is_foreign_array(value):  # torch or jax on the CPU
                    value = host_view(value, declared.name, where)
                info = args_.tensor_info(value, declared, where, self.target, view)
                if info.dtype != dt or info.shape is None or not arg.type.fits(info.shape):
                    swapped = getattr(value, "dtype", None)
                    raise ArgumentError(
                        f"argument {declared.name} must be {arg.type}, got {args_.describe(value)}",
                        where,
                        args_.byte_order_hint(swapped) if isinstance(swapped, np.dtype) else None,
                    )
                if self.target == "cuda" and view is not None:
                    args_.check_device_tensor(view, arg.type, declared, where)
                else:
                    writes = declared.name in self.spec.stored
                    args_.check_tensor(value, dt, declared, where, writes)
                prepared.append(value)
                shapes.append(args_.logical_shape(value, view))
            else:
                prepared.append(args_.check_scalar(value, dt, declared, where))
                shapes.append(None)
        args_.check_runtime_rows(args, prepared, shapes, wheres)
        try:
            self.spec.run(prepared)
        except ArgumentError as error:
            arg_names = [arg.name_hint or "?" for arg in args]
            raise args_.placed_at_argument(error, arg_names, wheres) from None

    def ir(self, stage: str = "final") -> str:
        """The IR text at a stage, as `Kernel.ir`."""
        return self.spec.ir(stage)

    def source(self, kind: str | None = None, arch: str | None = None) -> str:
        """Generated code, as `Kernel.source`."""
        return self.spec.source(kind, arch)

    @property
    def module(self) -> Module:
        return self.spec.module


def _rebuild_ir_kernel(text: str, target: str) -> IRKernel:
    """A pickled `IRKernel` compiled anew from its IR text."""
    return IRKernel(verify(parse(text, "<ir>")), target)
