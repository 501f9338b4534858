"""One specialization of a kernel: its IR at every stage and the means to run it."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lpir.errors import LpirError
from lpir.ir.core import Kernel as IRKernel
from lpir.ir.core import Module
from lpir.ir.grid import grid_text, is_empty
from lpir.ir.ops import StoreOp
from lpir.ir.printer import print_module
from lpir.ir.types import GlobalType
from lpir.ir.verifier import verify as verify_module
from lpir.language import ast
from lpir.language.lower import lower_kernel
from lpir.packing import PackedArray
from lpir.runtime import arguments as args_
from lpir.runtime.stages import StageTexts, stage_labels, verify_each_pass
from lpir.targets import get_target

if TYPE_CHECKING:
    from lpir.backends.cuda.kernel import CompiledKernel as CudaKernel

PIPELINE_OF_TARGET = {
    "interp": "interp",
    "threads": "cpu",
    "threads-cuda": "cuda",
    "cpu": "cpu",
    "cuda": "cuda",
    "cuda-host": "cuda",
}


# the modules that run a specialization on each target, beside the passes; of a package
# ending ".*", every module (the LLVM backend imports its emitters where it first emits)
RUNNING_MODULES = {
    "interp": ("lpir.interpreter.tile",),
    "threads": ("lpir.interpreter.thread",),
    "threads-cuda": ("lpir.interpreter.thread",),
    "cpu": ("lpir.backends.llvm.*",),
    "cuda": ("lpir.backends.cuda",),
    "cuda-host": ("lpir.backends.cuda", "lpir.backends.cuda.emulation"),
}


@functools.cache
def load_target(target: str) -> None:
    """Import what building and running a specialization on `target` needs, and read what the
    passes ask of the host and the CPU's code cache of the toolchain, once a process: called
    when a kernel is compiled, so that a call imports nothing. A child forked while another
    thread imports a module waits for that module's import lock forever; a process that
    compiles its kernels before starting threads may fork while they make their first calls.
    (The GPU's own libraries, cuda.core and NVRTC, still load at the first launch.)"""
    importlib.import_module("lpir.passes")
    importlib.import_module("lpir.backends.cuda.arrays")  # tells the checks a GPU array apart
    for name in RUNNING_MODULES[target]:
        module = importlib.import_module(name.removesuffix(".*"))
        if name.endswith(".*"):
            for inner in pkgutil.iter_modules(module.__path__):
                importlib.import_module(f"{module.__name__}.{inner.name}")
    pipeline = PIPELINE_OF_TARGET[target]
    get_target(pipeline)  # the CPU's asks LLVM for the host's features
    if target == "cpu":
        from lpir.backends.llvm import jit

        jit.cache_key("")  # reads the toolchain's versions from package metadata (email, ...)


class Specialization:
    """A kernel lowered for one set of parameters.

    Attributes:
        params: every parameter's value.
        stages: IR text by stage name ("source", "after:<pass>", ..., "final").
        module: the final IR module.
        stored: names of the tensor arguments the kernel writes.
    """

    def __init__(self, params: dict, stages: Mapping[str, str], module: Module, stored: set[str]):
        self.params = params
        self.stages = stages
        self.module = module
        self.stored = stored
        self.runner: Callable[[list], None] | None = None
        self.compiled: Any = None  # the CPU backend's CompiledKernel (machine code, address)
        # kind -> the text, made on demand; a GPU kind's function takes the architecture
        self.sources: dict[str, Callable[..., str]] = {}
        self.arch_kinds: set[str] = set()
        self.empty_grid = False  # a block count is 0: calls run nothing, no code is made
        # set by the `Kernel` that built it: its arguments' checks (declaration, dtype,
        # location, whether stored) and its run-time rows' (tensor, size argument, most rows)
        self.argument_checks: list[tuple] = []
        self.rows_checks: list[tuple[int, int, int]] = []

    @property
    def kernel_ir(self) -> IRKernel:
        return self.module.kernels[0]

    def run(self, arguments: list[Any]) -> None:
        assert self.runner is not None
        self.runner(arguments)

    def ir(self, stage: str) -> str:
        """The IR text at `stage` ("source", "after:<pass>" or "final")."""
        known = ", ".join(self.stages)
        if not isinstance(stage, str):
            raise LpirError(
                f"an IR stage is a string, not {type(stage).__name__} {stage!r:.60}",
                hint=f'ask for one stage at a time, e.g. ir("final"); known stages: {known}',
            )
        if stage not in self.stages:
            raise LpirError(f"no IR stage {stage!r}", hint=f"known stages: {known}")
        return self.stages[stage]

    def source(self, kind: str | None = None, arch: str | None = None) -> str:
        """The generated code of `kind` (None: the target's own, "llvm" on the CPU and "cuda"
        for CUDA, as `lpir emit` prints), of `arch` where the kind depends on one."""
        known = ", ".join(self.sources) or "none for this target"
        for what, value in (("a source kind", kind), ("an architecture", arch)):
            if value is not None and not isinstance(value, str):
                raise LpirError(
                    f"{what} is a string, not {type(value).__name__} {value!r:.60}",
                    hint=f'e.g. source("cuda", "sm_90"); kinds for this target: {known}',
                )
        if self.empty_grid:
            grid = grid_text(self.kernel_ir.grid)
            raise LpirError(
                f"the grid blocks({grid}) is empty for these parameters: a call runs no block, "
                "so no code is generated",
                hint="give parameters (or call with tensors) that make every block count at "
                "least 1 to see the code",
            )
        if kind is None and not self.sources:
            raise LpirError(
                "this target generates no code: it interprets the IR",
                hint="compile for cpu (llvm, asm), cuda or cuda-host (cuda, ptx, sass) to see "
                "generated code; ir() shows this target's IR",
            )
        if kind is None:
            kind = next(iter(self.sources))
        if kind not in self.sources:
            raise LpirError(f"no {kind!r} source for this target", hint=f"available: {known}")
        if arch is None:
            return self.sources[kind]()
        if kind not in self.arch_kinds:
            known = ", ".join(sorted(self.arch_kinds)) or "none for this target"
            raise LpirError(
                f"the {kind!r} source does not depend on a GPU architecture",
                hint=f"leave the architecture out, or ask for one that does: {known}",
            )
        return self.sources[kind](arch)


def stored_arguments(module: Module) -> set[str]:
    kernel = module.kernels[0]
    names = {id(a): a.name_hint for a in kernel.args if a.name_hint is not None}
    return {
        names[id(op.operands[0])]
        for op in kernel.walk()
        if isinstance(op, StoreOp) and id(op.operands[0]) in names
    }


def run_pipeline(
    module: Module,
    target: str,
    stages: dict[str, str] | None = None,
    verify: bool | None = None,
    after_each: Callable[[str, Module], None] | None = None,
) -> Module:
    """`module` through `target`'s pipeline. `stages`, if given, gets each pass's IR text by
    stage label ("after:<pass>", "after:<pass>#2", ...); `after_each` gets (label, module).
    `verify`: verify after every pass (None: where `LPIR_VERIFY_EACH` asks for it)."""
    from lpir.passes import PIPELINES, PassPipeline

    name = PIPELINE_OF_TARGET[target]
    labels = iter(stage_labels(PIPELINES[name]))

    def record(_: str, result: Module) -> None:
        label = next(labels)
        if stages is not None:
            stages[label] = print_module(result)
        if after_each is not None:
            after_each(label, result)

    each = verify_each_pass() if verify is None else verify
    pipeline = PassPipeline(PIPELINES[name], verify_each=each, after_each=record, target=name)
    return pipeline.run(module)


def pipeline_stages(source: Module, final: Module, target: str) -> StageTexts:
    """The stage texts of `source` compiled to `final` by `target`'s pipeline."""
    from lpir.passes import PIPELINES

    def replay(module: Module, record: Callable[[str, Module], None]) -> Module:
        return run_pipeline(module, target, verify=False, after_each=record)

    return StageTexts(source, final, PIPELINES[PIPELINE_OF_TARGET[target]], replay)


def build_specialization(
    program: ast.Program, kernel_def: ast.KernelDef, params: dict, target: str
) -> Specialization:
    tile_module = verify_module(lower_kernel(program, kernel_def, params))
    if is_empty(tile_module.kernels[0].grid):
        return empty_launch(params, tile_module)
    final = verify_module(run_pipeline(tile_module, target))
    stages = pipeline_stages(tile_module, final, target)
    spec = Specialization(params, stages, final, stored_arguments(tile_module))
    attach_runner(spec, target)
    return spec


def empty_launch(params: dict, module: Module) -> Specialization:
    """A specialization whose grid has a block count of 0 (an empty batch): a call checks its
    arguments and runs no block, on every target (a GPU is not launched); no code is made."""
    spec = Specialization(params, StageTexts(module, module), module, stored_arguments(module))
    spec.runner = lambda arguments: None
    spec.empty_grid = True
    return spec


def attach_runner(spec: Specialization, target: str) -> None:
    """Set how `spec` runs on `target`; on every target but the CPU, whose launcher does it
    where it takes the arguments' addresses, a call of arguments that overlap where the kernel
    stores into one is refused first (`arguments.refuse_overlap`)."""
    _attach_target_runner(spec, target)
    if target != "cpu" and spec.runner is not None:
        spec.runner = _refusing_overlap(spec.kernel_ir, spec.stored, spec.runner)


def _refusing_overlap(
    kernel: IRKernel, stored: set[str], runner: Callable[[list], None]
) -> Callable[[list], None]:
    tensors = [i for i, arg in enumerate(kernel.args) if isinstance(arg.type, GlobalType)]
    names = [kernel.args[i].name_hint or "?" for i in tensors]

    def run(arguments: list[Any]) -> None:
        values = [arguments[i] for i in tensors]
        args_.refuse_overlap(args_.memory_spans(names, stored, values))
        runner(arguments)

    return run


def _attach_target_runner(spec: Specialization, target: str) -> None:
    kernel = spec.kernel_ir
    if target == "interp":
        stored = stored_positions(kernel)
        spec.runner = lambda arguments: _run_interpreter(kernel, stored, arguments)
    elif target in ("threads", "threads-cuda"):
        spec.runner = lambda arguments: _run_threads(kernel, arguments)
    elif target == "cpu":
        from lpir.backends.llvm import compile_kernel

        compiled = compile_kernel(spec.module, spec.params)
        spec.runner = compiled.run
        spec.compiled = compiled
        spec.sources = {"llvm": lambda: compiled.llvm_ir, "asm": compiled.assembly}
    elif target in ("cuda", "cuda-host"):
        from lpir.backends.cuda import compile_kernel as compile_cuda

        cuda_kernel = compile_cuda(spec.module, spec.params)
        if target == "cuda":
            spec.runner = cuda_kernel.run
        else:  # the same C on the host: misaligned accesses and shared-memory races fail
            spec.runner = _host_runner(cuda_kernel)
        spec.sources = {
            "cuda": lambda: cuda_kernel.cuda_source,
            "ptx": cuda_kernel.ptx,
            "sass": cuda_kernel.sass,
        }
        spec.arch_kinds = {"ptx", "sass"}


def _host_runner(compiled: CudaKernel) -> Callable[[list], None]:
    """Runs a CUDA kernel's C on the host, built by the host compiler on the first run (not
    when only its source is asked for)."""
    from lpir.backends.cuda.emulation import EmulatedKernel

    built: list[EmulatedKernel] = []

    def run(arguments: list[Any]) -> None:
        if not built:
            built.append(EmulatedKernel(compiled))
        built[0].run(arguments)

    return run


def _run_interpreter(kernel: IRKernel, stored: set[int], arguments: list[Any]) -> None:
    """Run tile IR on the reference interpreter. Packed arguments are decoded into value
    arrays; only those at positions `stored` (`stored_positions`) are packed back, the others
    are read-only for the run (a store the scan missed would fail, not vanish)."""
    from lpir.interpreter.tile import run_tile_kernel

    values = []
    for position, (arg, value) in enumerate(zip(kernel.args, arguments)):
        if not isinstance(arg.type, GlobalType):
            values.append(value)
            continue
        array = args_.value_array(value, arg.type.dtype)
        if isinstance(value, PackedArray) and position not in stored:
            array.flags.writeable = False  # decoded for this run: nothing to write back
        values.append(array)
    run_tile_kernel(kernel, values)
    for position in stored:
        args_.store_back(arguments[position], values[position], kernel.args[position].type.dtype)


def stored_positions(kernel: IRKernel) -> set[int]:
    """Positions of the tensor arguments that some store of tile-IR `kernel` writes."""
    positions = {id(arg): index for index, arg in enumerate(kernel.args)}
    return {
        positions[id(op.operands[0])]
        for op in kernel.walk()
        if isinstance(op, StoreOp) and id(op.operands[0]) in positions
    }


def _run_threads(kernel: IRKernel, arguments: list[Any]) -> None:
    from lpir.interpreter.thread import run_thread_kernel

    buffers = [
        args_.byte_buffer(value) if hasattr(arg.type, "shape") else value
        for arg, value in zip(kernel.args, arguments)
    ]
    run_thread_kernel(kernel, buffers)
