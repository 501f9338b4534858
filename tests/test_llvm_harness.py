"""Differential harness for the CPU backend: run one thread-IR kernel under the thread-IR
interpreter (the oracle) and compiled by the LLVM backend, on copies of the same arguments,
and compare every tensor byte for byte.

Other test_llvm_* files import `run_both` and `assert_same` from here; the tests below check
the harness itself.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel

from lpir.dtypes import DType, dtype
from lpir.interpreter.thread import run_thread_kernel
from lpir.ir import parse
from lpir.ir.core import Module
from lpir.packing import PackedArray
from lpir.runtime.arguments import byte_buffer


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory):
    """Compiled code goes to a fresh cache folder per test module, not ~/.cache/lpir (test
    modules import this fixture to use it)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LPIR_CACHE_DIR", str(tmp_path_factory.mktemp("lpir-cache")))
    yield
    patch.undo()


def module_of(ir_or_module: str | Module) -> Module:
    return parse(ir_or_module) if isinstance(ir_or_module, str) else ir_or_module


def run_both(ir_or_module: str | Module, arguments: list[Any]) -> tuple[list, list]:
    """(reference results, compiled results): the arguments after each run (tensors copied)."""
    module = module_of(ir_or_module)
    reference = copy.deepcopy(arguments)
    compiled = copy.deepcopy(arguments)
    run_thread_kernel(
        module.kernels[0],
        [byte_buffer(a) if _is_tensor(a) else a for a in reference],
    )
    compile_kernel(module, {}).run(compiled)
    return reference, compiled


def _is_tensor(value: Any) -> bool:
    return isinstance(value, np.ndarray | PackedArray)


def assert_same(reference: list, compiled: list, names: list[str] | None = None) -> None:
    """Every tensor argument holds the same bytes after both runs."""
    for index, (a, b) in enumerate(zip(reference, compiled)):
        if not _is_tensor(a):
            continue
        ours, theirs = byte_buffer(b), byte_buffer(a)
        bad = np.flatnonzero(ours != theirs)
        name = names[index] if names else f"argument {index}"
        assert bad.size == 0, (
            f"{name}: {bad.size} bytes differ, first at {bad[:8]}: "
            f"compiled {ours[bad[:8]]}, interpreter {theirs[bad[:8]]}"
        )


def check(ir_or_module: str | Module, arguments: list[Any]) -> list:
    """Run both and require identical bytes; return the compiled run's arguments."""
    reference, compiled = run_both(ir_or_module, arguments)
    assert_same(reference, compiled)
    return compiled


class LaneKernel:
    """Builds the IR text of a kernel where each thread handles `lanes` consecutive elements of
    every tensor: n elements in all, `threads` per block, as many blocks as needed.

    Every tensor holds codes: types of 8 bits or more are stored as themselves; narrower types
    (and bool) one code per byte (a u8 tensor read through unpack_bits / written through
    pack_bits, as the pipeline does), so numpy arrays of `code_numpy_dtype` feed any kernel.
    """

    def __init__(self, n: int, lanes: int = 16, threads: int = 8):
        per_block = lanes * threads
        if n % per_block:
            raise ValueError(f"{n} elements is not a multiple of {per_block}")
        self.n, self.lanes, self.threads = n, lanes, threads
        self.blocks = n // per_block
        self.args: list[str] = []
        self.body: list[str] = []
        self.count = 0
        lane_list = list(range(lanes))
        self.offsets = f"offsets = {lane_list}, vector = {lanes}"
        self.bit_offsets = f"bit_offsets = {[8 * i for i in lane_list]}"
        self.emit("%bx = block_index {axis = 0} : i32")
        self.emit("%tid = thread_index : i32")
        self.emit(f"%threads = constant {{value = {threads}}} : i32")
        self.emit(f"%lanes = constant {{value = {lanes}}} : i32")
        self.emit("%first = mul(%bx, %threads) : i32")
        self.emit("%thread = add(%first, %tid) : i32")
        self.emit("%base = mul(%thread, %lanes) : i32")

    def emit(self, line: str) -> None:
        self.body.append("  " + line)

    def fresh(self, hint: str = "v") -> str:
        self.count += 1
        return f"%{hint}{self.count}"

    def vector(self, dt: DType | str, lanes: int | None = None) -> str:
        return f"<{lanes or self.lanes} x {dtype(dt).name}>"

    def op(self, expression: str, dt: DType | str, lanes: int | None = None) -> str:
        """`%new = <expression> : <lanes x dt>`; returns %new."""
        name = self.fresh()
        self.emit(f"{name} = {expression} : {self.vector(dt, lanes)}")
        return name

    def load(self, dt: DType | str) -> str:
        dt = dtype(dt)
        arg = f"%in{len(self.args)}"
        if dt.nbits >= 8:
            self.args.append(f"{arg}: global {dt.name}[{self.n}]")
            return self.op(f"ld({arg}, %base) {{{self.offsets}}}", dt)
        self.args.append(f"{arg}: global u8[{self.n}]")
        data = self.op(f"ld({arg}, %base) {{{self.offsets}}}", "u8")
        return self.op(f"unpack_bits({data}) {{{self.bit_offsets}}}", dt)

    def store(self, value: str, dt: DType | str, lanes: int | None = None) -> None:
        """Store a vector of `lanes` (default: the kernel's) elements per thread."""
        dt = dtype(dt)
        lanes = lanes or self.lanes
        arg = f"%out{len(self.args)}"
        base = "%base"
        if lanes != self.lanes:
            base = self.fresh("base")
            self.emit(f"{base}c = constant {{value = {lanes}}} : i32")
            self.emit(f"{base} = mul(%thread, {base}c) : i32")
        if dt.nbits < 8:
            fields = [8 * i for i in range(lanes)]
            value = self.op(f"pack_bits({value}) {{bit_offsets = {fields}}}", "u8", lanes)
            dt = dtype("u8")
        count = self.n // self.lanes * lanes
        self.args.append(f"{arg}: global {dt.name}[{count}]")
        self.emit(f"st({arg}, {base}, {value}) {{offsets = {list(range(lanes))}}}")

    def scalar(self, dt: DType | str) -> str:
        """A scalar argument; returns it splatted to a vector."""
        dt = dtype(dt)
        arg = f"%s{len(self.args)}"
        self.args.append(f"{arg}: {dt.name}")
        return self.op(f"splat({arg}) {{shape = [{self.lanes}]}}", dt)

    def text(self, name: str = "lanes") -> str:
        header = (
            f"kernel @{name}[]({', '.join(self.args)}) blocks({self.blocks}, 1, 1) "
            f"threads({self.threads}) stage(thread) {{"
        )
        return "\n".join([header, *self.body, "}", ""])


def codes_array(values: np.ndarray, dt: DType | str) -> np.ndarray:
    """A kernel tensor (see LaneKernel) holding the codes of `dt` values."""
    dt = dtype(dt)
    codes = dt.to_codes(values)
    return codes.astype(np.uint8) if dt.nbits < 8 else codes.astype(dt.code_numpy_dtype)


def empty_for(dt: DType | str, n: int) -> np.ndarray:
    dt = dtype(dt)
    return np.zeros(n, np.uint8 if dt.nbits < 8 else dt.code_numpy_dtype)


COPY = """
kernel @copy[](%x: global i32[256], %y: global i32[256], %k: i32) blocks(4, 1, 1) threads(16)
    stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c64 = constant {value = 64} : i32
  %c4 = constant {value = 4} : i32
  %0 = mul(%bx, %c64) : i32
  %1 = mul(%tid, %c4) : i32
  %base = add(%0, %1) : i32
  %v = ld(%x, %base) {offsets = [0, 1, 2, 3], vector = 4} : <4 x i32>
  %s = splat(%k) {shape = [4]} : <4 x i32>
  %w = add(%v, %s) : <4 x i32>
  st(%y, %base, %w) {offsets = [0, 1, 2, 3]}
}
"""


def test_harness_agrees_on_a_copy_kernel():
    x = np.arange(256, dtype=np.int32)
    result = check(COPY, [x, np.zeros(256, np.int32), 5])
    assert np.array_equal(result[1], x + 5)


def test_harness_notices_a_difference():
    reference = [np.zeros(4, np.int32)]
    compiled = [np.array([0, 0, 1, 0], np.int32)]
    try:
        assert_same(reference, compiled)
    except AssertionError as error:
        assert "differ" in str(error)
    else:
        raise AssertionError("assert_same accepted different bytes")
