"""Thread IR -> CUDA C: the kernel emitter, its value table and the per-op registry.

A `KernelEmitter` walks one thread-IR kernel in program order. Each IR value gets a `CValue`
that says how C code reads it:

* a scalar: a C expression (a literal for constants, else a `const` local);
* a vector: a local array `T v[n]` (16-byte aligned, indexed only by compile-time lanes so
  that it stays in registers), or a splat (every lane the same scalar expression, no array);
* a global tensor: a restrict-qualified kernel parameter; shared memory: a pointer into a
  `__shared__` byte array declared at the top of the kernel.

Op emitters are small functions registered per op class with `@emits(OpClass)` in the
`emit_*` modules (one per op family); `KernelEmitter.op` dispatches to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from lpir.backends.cuda import c_types
from lpir.backends.cuda.shared_plan import SharedPlan, plan_shared_memory
from lpir.backends.cuda.staging import StagingPlan
from lpir.backends.cuda.writer import CodeWriter
from lpir.backends.other_target import cannot_emit

from lpir.dtypes import DType
from lpir.errors import LpirError
from lpir.ir.analysis import IndexAnalysis
from lpir.ir.core import Kernel, Operation, Region, Value, users_of
from lpir.ir.ops import LoadThreadOp, StoreBitsOp, StoreThreadOp
from lpir.ir.printer import Namer, Printer
from lpir.ir.types import GlobalType, SharedType, VectorType

if TYPE_CHECKING:  # emit_staging imports this module
    from lpir.backends.cuda.emit_staging import _Loop


@dataclass
class CValue:
    """How C code reads one IR value.

    Attributes:
        kind: "scalar", "array", "splat", "global" or "shared".
        text: the C expression (scalar, splat), or the identifier (array, global, shared).
        dtype: the element dtype.
        lanes: the number of lanes of a vector (1 for scalars).
    """

    kind: str
    text: str
    dtype: DType
    lanes: int = 1
    offset: int = 0

    def lane(self, index: int | str) -> str:
        """The C expression of one lane (an int or a loop variable)."""
        if self.kind != "array":
            return self.text
        if isinstance(index, int):
            return f"{self.text}[{self.offset + index}]"
        return f"{self.text}[{self.offset} + {index}]" if self.offset else f"{self.text}[{index}]"

    def address(self, index: int = 0) -> str:
        """`&array[lane]`: the address of an array's lane (for helpers taking pointers)."""
        assert self.kind == "array", self.kind
        lane = self.offset + index
        return f"&{self.text}[{lane}]" if lane else self.text

    def slice(self, start: int, lanes: int) -> CValue:
        """Lanes start .. start + lanes - 1 of an array or splat, without a copy."""
        if self.kind == "array":
            return CValue("array", self.text, self.dtype, lanes, self.offset + start)
        return CValue(self.kind, self.text, self.dtype, lanes)

    @property
    def ctype(self) -> str:
        return c_types.c_type(self.dtype)


Emitter = Callable[["KernelEmitter", Operation], None]
EMITTERS: dict[type, Emitter] = {}
# An emitter as written: its op parameter is the class it emits, not any Operation.
AnyEmitter = TypeVar("AnyEmitter", bound=Callable[..., None])


def emits(*classes: type) -> Callable[[AnyEmitter], AnyEmitter]:
    """Register the decorated function as the emitter of ops of `classes`."""

    def register(function: AnyEmitter) -> AnyEmitter:
        for cls in classes:
            EMITTERS[cls] = function
        return function

    return register


_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
# C++ keywords, the names the emitted code and the helper header call without a prefix, and
# `i` and `j`, the counters of the writer's unrolled loops (a kernel's own `i` read inside one
# would read the counter).
_RESERVED_WORDS = """
    i j
    alignas alignof and asm auto bool break case catch char class const constexpr continue
    decltype default delete do double else enum explicit extern false float for friend goto if
    inline int long mutable namespace new noexcept not nullptr operator or private protected
    public register return short signed sizeof static struct switch template this throw true try
    typedef typename union unsigned using virtual void volatile while xor
    threadIdx blockIdx blockDim gridDim warpSize min max memcpy memset uint2 uint4 float2
    expf exp2f logf log2f sqrtf floorf ceilf rintf sinf cosf tanhf erff fabsf fabs fmodf fmod
    fminf fmaxf fmin fmax exp exp2 log log2 sqrt floor ceil rint sin cos tanh erf"""
_RESERVED = frozenset(_RESERVED_WORDS.split())


class KernelEmitter:
    """Emits one thread-IR kernel as an `extern "C" __global__` CUDA function."""

    def __init__(self, kernel: Kernel, name: str | None = None):
        if kernel.stage != "thread":
            raise LpirError(f"the CUDA backend emits thread IR, not {kernel.stage} IR")
        self.kernel = kernel
        # a kernel named as a C++ word or a CUDA builtin (`double`, `max`) would not compile
        reserved = kernel.name in _RESERVED or kernel.name.startswith(("lpir", "_"))
        self.name = name or (f"{kernel.name}_kernel" if reserved else kernel.name)
        self.w = CodeWriter()
        self.values: dict[int, CValue] = {}
        self.analysis = IndexAnalysis(kernel)
        self.namer = Namer()
        Printer(self.namer).kernel(kernel)
        self.used_names: set[str] = set()
        self.stored = _stored_memories(kernel)
        self.shared_bytes = 0
        self.dynamic_shared = False
        self.users = users_of(kernel)
        self.emitted_early: set[int] = set()
        self.yield_targets: list[list[CValue | None]] = []
        self.staging: StagingPlan | None = None  # pipelined loads copied by cp.async
        self.shared_plan = SharedPlan()  # the shared tiles' offsets (shared_plan.py)
        # id(ForOp) -> emit_staging's state of a loop being emitted
        self.staged_loops: dict[int, _Loop] = {}

    # ---- names and values --------------------------------------------------------------------
    def ir_name(self, value: Value) -> str:
        """The value's name in the printed IR (`acc.1`, `0`): the same whether the kernel was
        built in memory or parsed from IR text."""
        return self.namer.names.get(id(value), value.name_hint or "v")

    def c_name(self, value: Value) -> str:
        """A unique C identifier derived from the value's IR name (`%acc.1` -> `acc_1`)."""
        text = self.ir_name(value)
        text = _IDENTIFIER.sub("_", text)
        if text[0].isdigit():
            text = "v" + text
        if text in _RESERVED or text.startswith(("lpir", "_")):
            text = "v_" + text
        name, suffix = text, 1
        while name in self.used_names:
            name = f"{text}_{suffix}"
            suffix += 1
        self.used_names.add(name)
        return name

    def fresh(self, prefix: str = "t") -> str:
        """A new C identifier for a temporary (`t_0`, `lanes_1`, ...); a prefix made of an IR
        name is made an identifier (`%0` of IR text: `v0_swizzled_0`)."""
        prefix = _IDENTIFIER.sub("_", prefix)
        if prefix[0].isdigit():
            prefix = "v" + prefix
        index = 0
        while f"{prefix}_{index}" in self.used_names:
            index += 1
        name = f"{prefix}_{index}"
        self.used_names.add(name)
        return name

    def value(self, value: Value) -> CValue:
        try:
            return self.values[id(value)]
        except KeyError:
            raise LpirError(f"CUDA backend: {value!r} used before it was emitted") from None

    def bind(self, value: Value, cvalue: CValue) -> CValue:
        self.values[id(value)] = cvalue
        return cvalue

    def scalar(self, result: Value, expression: str, constant: bool = True) -> CValue:
        """Define a scalar result as a local initialized with `expression`."""
        dt = result.type.dtype
        name = self.c_name(result)
        qualifier = "const " if constant else ""
        self.w.line(f"{qualifier}{c_types.c_type(dt)} {name} = {expression};")
        return self.bind(result, CValue("scalar", name, dt))

    def array(self, result: Value, name: str | None = None) -> CValue:
        """Declare the array of a vector result; the caller fills its lanes."""
        vt = result.type
        assert isinstance(vt, VectorType)
        name = name or self.c_name(result)
        self.declare_array(name, vt.dtype, vt.size)
        return self.bind(result, CValue("array", name, vt.dtype, vt.size))

    def declare_array(self, name: str, dt: DType, lanes: int) -> None:
        self.w.line(f"alignas(16) {c_types.c_type(dt)} {name}[{lanes}];")

    def lanewise(self, result: Value, lane: Callable[[str], str]) -> CValue:
        """A vector result whose lane i is `lane(i)`, emitted as an unrolled loop."""
        target = self.array(result)
        self.w.unrolled_loop(target.lanes, lambda i: self.w.line(f"{target.lane(i)} = {lane(i)};"))
        return target

    def materialize(self, value: Value) -> CValue:
        """The value as an array (splats are copied into one), for helpers taking pointers."""
        cvalue = self.value(value)
        if cvalue.kind == "array":
            return cvalue
        name = self.fresh("lanes")
        self.declare_array(name, cvalue.dtype, cvalue.lanes)
        array = CValue("array", name, cvalue.dtype, cvalue.lanes)
        self.w.unrolled_loop(
            array.lanes, lambda i: self.w.line(f"{array.lane(i)} = {cvalue.text};")
        )
        return array

    def is_read_only(self, memory: Value) -> bool:
        """A global tensor that this kernel never writes (may be read through the nc path)."""
        return isinstance(memory.type, GlobalType) and id(memory) not in self.stored

    # ---- kernel -------------------------------------------------------------------------------
    def emit(self) -> str:
        self.check_bit_packed()
        w = self.w
        parameters = [self.parameter(arg) for arg in self.kernel.args]
        w.line(f'extern "C" __global__ void __launch_bounds__({self.kernel.threads})')
        w.line(f"{self.name}({', '.join(parameters)})")
        with w.block():
            self.declare_shared_memory()
            self.region(self.kernel.body)
        return w.text()

    def check_bit_packed(self) -> None:
        """Raise where a load or store still moves elements of under 8 bits: bit-packing
        turns those into byte accesses and bit fields, which is all this backend emits (thread
        IR printed before that pass would be read a byte an element)."""
        for op in self.kernel.walk():
            if isinstance(op, LoadThreadOp | StoreThreadOp) and op.access_dtype.nbits < 8:
                raise LpirError(
                    f"the CUDA backend needs packed accesses as bytes, and this "
                    f"{op.name} moves {op.access_dtype.name} elements",
                    op.location,
                    "run bit-packing first: IR text printed after it (or the .lp source) "
                    "compiles for the GPU",
                )

    def parameter(self, arg: Value) -> str:
        name = self.c_name(arg)
        if isinstance(arg.type, GlobalType):
            element = c_types.memory_type(arg.type.dtype)
            const = "const " if self.is_read_only(arg) else ""
            self.bind(arg, CValue("global", name, arg.type.dtype))
            return f"{const}{element}* __restrict__ {name}"
        dt = arg.type.dtype
        self.bind(arg, CValue("scalar", name, dt))
        return f"{c_types.c_type(dt)} {name}"

    def declare_shared_memory(self) -> None:
        """The shared tiles at the offsets shared_plan.py gives them (tiles whose lifetimes do
        not meet share bytes), each with the copies a staged ring buffers (staging.py, planned
        there within the static 48 KB); dynamic beyond 48 KB in all. Where no two tiles share
        bytes each has its own array, else one array holds them all."""
        plan, self.staging, self.dynamic_shared = plan_shared_memory(self.kernel, self.users)
        self.shared_plan = plan
        self.shared_bytes = plan.total + self.staging.slots_bytes
        pooled = self.dynamic_shared or plan.shares
        if self.dynamic_shared:
            self.w.line(f"LPIR_DYNAMIC_SHARED(lpir_shared, {self.shared_bytes});")
        elif pooled:
            self.w.line(f"LPIR_SHARED(lpir_shared, {plan.total});")
        for placement in plan.placements:
            result = placement.alloc.result
            st = result.type
            assert isinstance(st, SharedType)
            name = self.c_name(result)
            element = c_types.memory_type(st.dtype)
            if pooled:
                storage = f"lpir_shared + {placement.offset}"
            else:
                storage = f"{name}_storage"
                self.w.line(f"LPIR_SHARED({storage}, {placement.nbytes});")
            self.w.line(f"{element}* const {name} = reinterpret_cast<{element}*>({storage});")
            self.bind(result, CValue("shared", name, st.dtype))

    def region(self, region: Region) -> None:
        for op in region.ops:
            if self.shared_plan.barrier_before(op):  # tiles before and after share bytes
                self.w.line("__syncthreads();")
            self.op(op)

    def only_user(self, value: Value) -> Operation | None:
        """The op that uses `value`, if exactly one op uses it exactly once."""
        users = self.users.get(id(value), [])
        return users[0] if len(users) == 1 else None

    def op(self, op: Operation) -> None:
        if id(op) in self.emitted_early:
            return
        emitter = EMITTERS.get(type(op))
        if emitter is None:
            message, hint = cannot_emit(op, "cuda")
            raise LpirError(message, op.location, hint)
        emitter(self, op)


def _stored_memories(kernel: Kernel) -> set[int]:
    return {
        id(op.operands[0]) for op in kernel.walk() if isinstance(op, StoreThreadOp | StoreBitsOp)
    }
