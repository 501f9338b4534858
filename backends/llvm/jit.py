"""Compile an LLVM module for the host CPU (O3, loop and SLP vectorization) and load it.

The object code is cached on disk (`lpir.runtime.cache`), keyed by the module text, the host
CPU and the toolchain versions; a cached object skips LLVM's optimizer and code generator
entirely and is linked into a fresh MCJIT engine.
"""

from __future__ import annotations

import functools
import hashlib

import llvmlite
import llvmlite.binding as llvm

from lpir import __version__
from lpir.errors import CompileError
from lpir.runtime import cache


@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


def target_machine() -> llvm.TargetMachine:
    """A new machine for the host (an MCJIT engine takes ownership of the one it is given)."""
    _initialize()
    target = llvm.Target.from_default_triple()
    features = llvm.get_host_cpu_features().flatten()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features, opt=3, codemodel="jitdefault"
    )


@functools.cache
def host_description() -> str:
    _initialize()
    features = llvm.get_host_cpu_features().flatten()
    return f"{llvm.get_process_triple()} {llvm.get_host_cpu_name()} {features}"


@functools.cache
def _data_layout() -> str:
    return str(target_machine().target_data)


def cache_key(llvm_text: str) -> str:
    parts = [llvm_text, host_description(), llvmlite.__version__, str(llvm.llvm_version_info)]
    parts.append(__version__)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def optimize(module: llvm.ModuleRef) -> None:
    machine = target_machine()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)


class Executable:
    """Machine code loaded into an execution engine (kept alive as long as this object)."""

    def __init__(self, llvm_text: str):
        _initialize()
        self.key = cache_key(llvm_text)
        self.optimized_text: str | None = None
        self.assembly_text: str | None = None
        data = cache.load("llvm", self.key)
        if data is None:
            module = self.parse(llvm_text)
            optimize(module)
            self.optimized_text = str(module)
            data = target_machine().emit_object(module)
            cache.store("llvm", self.key, data)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        self.engine.finalize_object()
        self.llvm_text = llvm_text

    @staticmethod
    def parse(text: str) -> llvm.ModuleRef:
        try:
            module = llvm.parse_assembly(text)
            module.verify()
        except RuntimeError as error:
            raise CompileError(f"LLVM rejected the generated IR: {error}") from None
        module.triple = llvm.get_process_triple()
        module.data_layout = _data_layout()
        return module

    def address(self, name: str) -> int:
        address = self.engine.get_function_address(name)
        if not address:
            raise CompileError(f"no function {name} in the compiled kernel")
        return address

    def optimized(self) -> str:
        """The optimized LLVM IR (recomputed when the object came from the cache)."""
        if self.optimized_text is None:
            module = self.parse(self.llvm_text)
            optimize(module)
            self.optimized_text = str(module)
        return self.optimized_text

    def assembly(self) -> str:
        if self.assembly_text is None:
            module = self.parse(self.llvm_text)
            optimize(module)
            self.assembly_text = target_machine().emit_assembly(module)
        return self.assembly_text
