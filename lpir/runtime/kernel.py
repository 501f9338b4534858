"""`lpir.compile` and `Kernel`: compile a kernel source for a target and call it on arrays.

A `Kernel` holds a parsed source and the parameters given at compile time; where they and the
defaults give every parameter, the source is also lowered to tile IR then, so that the
language's errors are `lpir.compile`'s. Calling it checks the arguments, deduces the remaining
parameters from their shapes and dtypes, and runs the specialization for that set of
parameters, built on first use (the passes and the backend: `specialize()` builds it ahead
where every parameter is known) and cached in memory, and on disk for compiled targets.

The targets, and what each is for, are `lpir.targets.RUN_TARGETS`: on the CPU "cpu" (LLVM),
"interp" (the reference interpreter), "threads" and "threads-cuda" (the CPU's or the GPU's
pipeline run by the thread-IR interpreter) and "cuda-host" (the CUDA C run on the CPU); on a
GPU "cuda".
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from lpir.dtypes import DType
from lpir.errors import ArgumentError, LpirError, SourceLocation, location_in
from lpir.ir.core import Module
from lpir.ir.printer import print_module
from lpir.ir.types import GlobalType
from lpir.language import ast
from lpir.language.lower import lower_kernel
from lpir.language.specialize import ArgumentInfo, choose_params, runtime_rows_name
from lpir.language.syntax import parse_program
from lpir.packing import PackedArray
from lpir.runtime import arguments as args_
from lpir.runtime.foreign_arrays import host_view, is_foreign_array
from lpir.runtime.fork_safe import ForkSafeLock
from lpir.runtime.ir_kernel import (
    IRKernel,
    compile_ir,
    compile_ir_text,
    is_ir_path,
    looks_like_ir_text,
    parse_source,
)
from lpir.runtime.source_files import decode_source, normalize_source_text, read_source_file
from lpir.runtime.specialization import Specialization, build_specialization, load_target
from lpir.targets import RUN_TARGETS

TARGETS = tuple(RUN_TARGETS)


def _read_source(path_or_source: str | os.PathLike) -> tuple[str, str]:
    """(text, file name) from a path to a .lp file or from the source text itself: a Path is
    a path, and so is a string of one line that names an existing file (`{proj}/k.lp`) or
    that has no `{` (source text has a kernel body)."""
    text = str(path_or_source)
    if not isinstance(path_or_source, os.PathLike):
        _refuse_empty(text)  # Path("") is ".", the working directory: not what was meant
    one_line = "\n" not in text
    if isinstance(path_or_source, os.PathLike) or (
        one_line and ("{" not in text or _is_file(text))
    ):
        path = Path(text)
        if not path.exists():
            raise LpirError(f"no such kernel file: {text}", hint="pass a path or source text")
        return read_source_file(path), str(path)
    return normalize_source_text(text), "<source>"


def _refuse_empty(text: str) -> None:
    """Source text (a str, or bytes decoded) with nothing in it is an error of its own."""
    if not text.strip():
        raise LpirError(
            "the source is empty" if not text else "the source holds only whitespace",
            hint="pass kernel source text (kernel name[...](...) blocks(...) threads(...) "
            "{ ... }) or the path of a .lp file",
        )


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # a name too long for the OS: source text of one long line
        return False


def compile(
    path_or_source: str | bytes | os.PathLike,
    target: str = "cpu",
    kernel: str | None = None,
    **params: Any,
) -> Kernel | IRKernel:
    """Compile a kernel for `target`; parameters not given are deduced at call time.

    Args:
        path_or_source: a path to a `.lp` file, or the kernel source text (a str, or bytes
            of UTF-8 as a file's `read_bytes()` gives them); a path to an `.ir`
            file, or IR text (a string that starts `kernel @`, as `Kernel.ir()` prints),
            compiles that IR as it is (see `lpir.runtime.ir_kernel`; no parameters).
        target: one of `lpir.targets.RUN_TARGETS`: "cpu", "cuda", "interp" (the reference
            interpreter), "threads", "threads-cuda" or "cuda-host" (the CUDA C run on the CPU).
        kernel: which kernel of the source; needed where it defines several.
        **params: compile-time parameters: ints, and dtypes by name (WT="u3") or as numpy
            dtypes lpir has (np.float16, np.dtype("int8"), ml_dtypes.bfloat16).
    """
    if not isinstance(path_or_source, str | bytes | bytearray | memoryview | os.PathLike):
        raise LpirError(
            "lpir.compile takes a kernel's path or source text, not "
            f"{'None' if path_or_source is None else args_.describe(path_or_source)}",
            hint="pass the path of a .lp or .ir file (a str or a pathlib.Path), or the source "
            "text itself (a str, or UTF-8 bytes)",
        )
    if target not in TARGETS:
        raise LpirError(f"unknown target {target!r}", hint=f"use one of {', '.join(TARGETS)}")
    if isinstance(path_or_source, bytes | bytearray | memoryview):
        # bytes are source text, never a path (str(data) would be parsed as "b'...'")
        text, file = decode_source(bytes(path_or_source), "<source>"), "<source>"
        _refuse_empty(text)
    elif is_ir_path(path_or_source):
        return compile_ir(path_or_source, target, kernel, params)
    else:
        text, file = _read_source(path_or_source)
    if file == "<source>" and looks_like_ir_text(text):
        return compile_ir_text(text, target, kernel, params)
    program = parse_source(text, file)
    if not program.kernels:
        raise LpirError(f"{file} defines no kernel")
    names = ", ".join(k.name for k in program.kernels)
    if kernel is None and len(program.kernels) > 1:
        # as for IR text: running whichever kernel comes first would check or time a kernel
        # the caller may not have meant, and say nothing of it
        shown = "the source" if file == "<source>" else Path(file).name
        raise LpirError(
            f"{shown} holds {len(program.kernels)} kernels ({names})",
            hint="choose one with --kernel NAME (kernel=NAME)",
        )
    try:
        kernel_def = program.kernel(kernel)
    except KeyError:
        raise LpirError(
            f"no kernel named {kernel!r}; the source has {names}",
            hint=f"choose one of them: kernel={program.kernels[0].name!r} from Python, "
            f"--kernel {program.kernels[0].name} on the command line",
        ) from None
    return Kernel(program, kernel_def, target, params)


class Kernel:
    """A compiled kernel; call it with arrays (see `lpir.compile`)."""

    def __init__(
        self, program: ast.Program, kernel_def: ast.KernelDef, target: str, params: dict
    ) -> None:
        self.program = program
        self.definition = kernel_def
        self.target = target
        load_target(target)  # (a call imports nothing: see load_target)
        self.params = self._given_parameters(params)
        self.specializations: dict[tuple, Specialization] = {}
        # what calls have passed (dtypes and shapes) -> their specialization: a call like an
        # earlier one skips deducing and checking the parameters again (~200 us in Python)
        self._by_arguments: dict[tuple, Specialization] = {}
        # the same for calls whose tensors are all host arrays, keyed by their numpy dtypes and
        # shapes as they come (no lpir dtypes looked up): what a call costs before the kernel
        # runs is most of a small kernel's time on the CPU
        self._by_host_arrays: dict[tuple, Specialization] = {}
        self._tensor_positions = [
            i for i, decl in enumerate(kernel_def.args) if isinstance(decl, ast.GlobalArg)
        ]
        # scalars whose dtype a parameter names: a numpy scalar's dtype may deduce it
        parameters = {p.name for p in kernel_def.params}
        self._deducing_scalar_positions = [
            i
            for i, decl in enumerate(kernel_def.args)
            if isinstance(decl, ast.ScalarArg) and decl.dtype_name in parameters
        ]
        # tensors whose first dimension is an i32 argument: one specialization serves every
        # size, so their first dimension keys no cache (it is checked at every call)
        self._runtime_rows = {
            i
            for i, decl in enumerate(kernel_def.args)
            if isinstance(decl, ast.GlobalArg) and runtime_rows_name(kernel_def, decl)
        }
        # a lock per key of `specializations`, kept as they are: threads whose first calls
        # need the same specialization at once build it once and share it
        self._building: dict[tuple, ForkSafeLock] = {}
        self._building_lock = ForkSafeLock()
        self._wheres: list | None = None
        self.last: Specialization | None = None
        if self._all_given():  # the language's errors surface here, not at the first call
            lower_kernel(program, kernel_def, choose_params(program, kernel_def, self.params, None))

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def __signature__(self) -> inspect.Signature:
        """The call's signature (`inspect.signature(kernel)`, `help`): the declared arguments."""
        return args_.call_signature([decl.name for decl in self.definition.args])

    def __repr__(self) -> str:
        names = [decl.name for decl in self.definition.args]
        return args_.kernel_repr("Kernel", self.name, names, self.target, self.params)

    def __reduce__(self) -> tuple:
        """Pickle (and copy) the source, its file name, the kernel's name, the target and the
        compile-time parameters; unpickling compiles them anew (machine code comes from the
        disk cache), and specializations are rebuilt as calls need them. Compiled code holds
        machine addresses and GPU handles that mean nothing in another process."""
        program = self.program
        return _rebuild_kernel, (program.source, program.file, self.name, self.target, self.params)

    def _given_parameters(self, params: dict) -> dict:
        """The compile-time parameters as lpir takes them (numpy dtypes as lpir's); an error
        is placed at the parameter's declaration."""
        given = {}
        for name, value in params.items():
            try:
                given[name] = args_.parameter_dtype(name, value)
            except ArgumentError as error:
                declared = [p.span for p in self.definition.params if p.name == name]
                span = declared[0] if declared else self.definition.span
                source, file = self.program.source, self.program.file
                end = span.column + len(name) if declared else None
                place = location_in(source, file, span.line, span.column, end)
                raise error.with_location(place) from None
        return given

    def _all_given(self) -> bool:
        return all(p.name in self.params or p.default is not None for p in self.definition.params)

    # ---- specializations -------------------------------------------------------------------
    def specialize(self, arguments: list[ArgumentInfo] | None = None) -> Specialization:
        """The compiled form for the parameters these arguments imply (cached)."""
        seen = None if arguments is None else self._seen(arguments)
        spec = self._by_arguments.get(seen) if seen is not None else None
        if spec is None:
            values = choose_params(self.program, self.definition, self.params, arguments)
            spec = self._built(values)
            if seen is not None:
                self._by_arguments[seen] = spec
        self.last = spec  # (for inspection: which call was last matters not between threads)
        return spec

    def _built(self, values: dict) -> Specialization:
        """The specialization for every parameter's value, built once: a thread that needs it
        while another builds it waits for that one (a lost race used to leave the loser's
        checks keyed by its id, which a later specialization could reuse)."""
        key = tuple(sorted((k, v.name if isinstance(v, DType) else v) for k, v in values.items()))
        spec = self.specializations.get(key)
        if spec is not None:
            return spec
        with self._building_lock:
            building = self._building.setdefault(key, ForkSafeLock())
        with building:
            spec = self.specializations.get(key)
            if spec is None:
                spec = build_specialization(self.program, self.definition, values, self.target)
                spec.argument_checks = self._argument_checks(spec)
                spec.rows_checks = _rows_checks(spec)
                self.specializations[key] = spec
        return spec

    def _seen(self, arguments: list[ArgumentInfo]) -> tuple:
        """What a call's arguments key the specializations by: run-time rows left out."""
        return tuple(
            info._replace(shape=(-1, *info.shape[1:]))  # (-1: any number of rows)
            if index in self._runtime_rows and info.shape
            else info
            for index, info in enumerate(arguments)
        )

    def __call__(self, /, *arguments: Any, **by_name: Any) -> None:
        """Run the kernel on `arguments`, in the order of its declaration, or by name as in
        Python (positional ones first): `kernel(x, y, z=z)`."""
        decls = self.definition.args
        if by_name:
            declared = [decl.name for decl in decls]
            parameters = [param.name for param in self.definition.params]
            arguments = args_.bound_by_name(
                self.name,
                declared,
                parameters,
                arguments,
                by_name,
                self._header_location(),
                self._argument_locations(),
            )
        if len(arguments) != len(decls):
            names = ", ".join(d.name for d in decls)
            raise ArgumentError(
                f"{self.name} takes {len(decls)} arguments ({names}), got {len(arguments)}",
                self._header_location(),
                hint=f"call {self.name}({names})",
            )
        host_key = self._host_arrays_key(arguments)
        if host_key is None:  # a GPU array, another library's host array, or a mistake
            arguments = self._host_views(arguments)
            host_key = self._host_arrays_key(arguments)
        spec = self._by_host_arrays.get(host_key) if host_key is not None else None
        if spec is None:
            spec, views = self._specialize_for(arguments)
            if host_key is not None:
                self._by_host_arrays[host_key] = spec
        else:  # host arrays of dtypes and shapes seen before: no GPU views, the same parameters
            self.last = spec
            views = None
        prepared = self._checked(spec, arguments, views)
        try:
            spec.run(prepared)
        except ArgumentError as error:
            declared = [decl.name for decl in decls]
            raise args_.placed_at_argument(error, declared, self._argument_locations()) from None

    def _host_arrays_key(self, arguments: tuple) -> tuple | None:
        """The dtypes and shapes of a call's tensors where all are host arrays (numpy arrays
        and `PackedArray`s), with the numpy dtypes of scalars that may deduce a parameter:
        what picks the specialization; None where a tensor is anything else (a GPU array, a
        mistake)."""
        key: list[object] = []
        for position in self._tensor_positions:
            value = arguments[position]
            if not isinstance(value, np.ndarray | PackedArray):
                return None
            shape = value.shape[1:] if position in self._runtime_rows else value.shape
            key.append((value.dtype, len(value.shape), shape))
        for position in self._deducing_scalar_positions:
            value = arguments[position]
            key.append(value.dtype if isinstance(value, np.generic) else None)
        return tuple(key)

    def _host_views(self, arguments: tuple) -> tuple:
        """The call's arguments with other libraries' host arrays (torch or jax on the CPU) as
        numpy arrays over their memory (`foreign_arrays.host_view`)."""
        wheres = self._argument_locations()
        converted = list(arguments)
        for position in self._tensor_positions:
            value = arguments[position]
            if is_foreign_array(value) and args_.device_view_of(value) is None:
                name = self.definition.args[position].name
                converted[position] = host_view(value, name, wheres[position])
        return tuple(converted)

    def _specialize_for(self, arguments: tuple) -> tuple[Specialization, list]:
        """The specialization a call's arguments imply, and their GPU views (None for host
        arrays and scalars)."""
        infos, views = [], []
        for decl, value, where in zip(self.definition.args, arguments, self._argument_locations()):
            if isinstance(decl, ast.GlobalArg):
                view = args_.device_view_of(value)
                infos.append(args_.tensor_info(value, decl, where, self.target, view))
                views.append(view)
            else:
                infos.append(args_.scalar_info(value))
                views.append(None)
        return self.specialize(infos), views

    def _checked(self, spec: Specialization, arguments: tuple, views: list | None) -> list:
        """The arguments as `spec.run` takes them, each checked against its declaration:
        host arrays and scalars themselves, GPU arrays as their views."""
        checks = spec.argument_checks
        prepared = []
        for index, (decl, dt, where, writes) in enumerate(checks):
            value = arguments[index]
            if writes is None:
                prepared.append(args_.check_scalar(value, dt, decl, where))
            elif views is not None and views[index] is not None and self.target == "cuda":
                arg_type = spec.kernel_ir.args[index].type
                assert isinstance(arg_type, GlobalType)  # a tensor argument
                args_.check_device_tensor(views[index], arg_type, decl, where)
                prepared.append(views[index])  # checked: the launch only reads its pointer
            else:
                args_.check_tensor(value, dt, decl, where, writes)
                prepared.append(value)
        for tensor, size, bound in spec.rows_checks:
            view = views[tensor] if views is not None else None
            shape = args_.logical_shape(arguments[tensor], view)  # (checked: a tensor's)
            # (where they disagree, check_runtime_rows finds the argument and says what is wrong)
            if shape is None or not shape[0] == prepared[size] <= bound:
                shapes = [
                    args_.logical_shape(value, views[i] if views is not None else None)
                    if i in self._runtime_rows
                    else None
                    for i, value in enumerate(arguments)
                ]
                wheres = [check[2] for check in checks]
                args_.check_runtime_rows(spec.kernel_ir.args, prepared, shapes, wheres)
        return prepared

    def _argument_checks(self, spec: Specialization) -> list[tuple]:
        """(declaration, dtype, location, whether the kernel writes it: None for a scalar)
        for each argument of `spec`."""
        checks = []
        for decl, arg, where in zip(
            self.definition.args, spec.kernel_ir.args, self._argument_locations()
        ):
            dt = arg.type.dtype
            writes = decl.name in spec.stored if isinstance(decl, ast.GlobalArg) else None
            checks.append((decl, dt, where, writes))
        return checks

    def _header_location(self) -> SourceLocation:
        """The place of the kernel's name in the source (for errors about a whole call)."""
        span = self.definition.name_span or self.definition.span
        end = span.end_column if span.end_line == span.line else None
        return location_in(self.program.source, self.program.file, span.line, span.column, end)

    def _argument_locations(self) -> list:
        """Each argument's place in the source (for error messages), found once."""
        if self._wheres is None:
            self._wheres = []
            for decl in self.definition.args:
                span = decl.span
                end = span.end_column if span.end_line == span.line else None
                source, file = self.program.source, self.program.file
                self._wheres.append(location_in(source, file, span.line, span.column, end))
        return self._wheres

    # ---- inspection -------------------------------------------------------------------------
    def _specialization_for_inspection(self) -> Specialization:
        if self.last is not None:
            return self.last
        return self.specialize(None)

    def ir(self, stage: str = "final") -> str:
        """The IR text at a stage: "source", "after:<pass>" or "final". A pass that runs
        more than once in the target's pipeline (canonicalize, cse, dce) names its later runs
        "after:<pass>#2", "after:<pass>#3", ..."""
        return self._specialization_for_inspection().ir(stage)

    def source(self, kind: str | None = None, arch: str | None = None) -> str:
        """Generated code: "llvm" or "asm" (cpu), "cuda", "ptx" or "sass" (cuda, cuda-host;
        PTX and SASS for `arch`, e.g. "sm_90", default the current GPU's, else
        $LPIR_CUDA_ARCH or sm_80). Without `kind`, the target's own: "llvm" on the CPU,
        "cuda" for CUDA (what `lpir emit` prints)."""
        return self._specialization_for_inspection().source(kind, arch)

    @property
    def module(self) -> Module:
        return self._specialization_for_inspection().module


def _rows_checks(spec: Specialization) -> list[tuple[int, int, int]]:
    """(tensor position, size position, most rows) of each tensor whose rows a size argument
    gives: each call checks the tensor has that many (at most the i32 bound)."""
    args = spec.kernel_ir.args
    positions = {arg.name_hint: index for index, arg in enumerate(args)}
    return [
        (index, positions[arg.type.extent], arg.type.shape[0])
        for index, arg in enumerate(args)
        if isinstance(arg.type, GlobalType) and arg.type.extent is not None
    ]


def _rebuild_kernel(source: str, file: str, name: str, target: str, params: dict) -> Kernel:
    """A pickled `Kernel` compiled anew (see `Kernel.__reduce__`)."""
    program = parse_program(source, file)
    return Kernel(program, program.kernel(name), target, params)


__all__ = ["Kernel", "compile", "print_module"]
