"""The rewriter that lower-to-threads builds on: tile types as thread types, the thread
index, dispatch of each tile op to its `lower_<Class>` method, and lane shuffles. The pass and
the lowering of shape ops, layout conversions and memory accesses are in lower_to_threads.py;
reductions in thread_reductions.py, dots in thread_dots.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from lpir.passes.thread_values import IndexBuilder

from lpir.errors import VerifyError
from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.ops import ShuffleOp, ThreadIndexOp
from lpir.ir.rewrite import Rewriter
from lpir.ir.types import TileType, Type, VectorType, as_tile, as_vector
from lpir.layout import RegisterLayout


def thread_type(type_: Type) -> Type:
    """The per-thread type of a tile-IR type (tiles become vectors of their slots)."""
    if isinstance(type_, TileType):
        return VectorType(type_.dtype, type_.selected_layout.slots)
    return type_


def tile_layout(value: Value) -> RegisterLayout:
    """The layout of a tile value, which layout-selection has set."""
    return as_tile(value.type).selected_layout


class ThreadLowering(Rewriter):
    """Tile IR -> thread IR, one `lower_<Class>` method per tile op (see lower_to_threads)."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self._tid: Value | None = None
        self.index = IndexBuilder(self.builder)

    @property
    def tid(self) -> Value:
        """The thread index, made at the top of the kernel's body."""
        if self._tid is None:
            raise RuntimeError("the thread index is made when the kernel's body starts")
        return self._tid

    def new_stage(self, kernel: Kernel) -> str:
        return "thread"

    def rewrite_region_ops(self, region: Region) -> None:
        if region is self.kernel.body:
            self._tid = self.builder.add(ThreadIndexOp.create())
        super().rewrite_region_ops(region)

    def region_arg_type(self, arg: Value) -> Type:
        return thread_type(arg.type)

    def copy(
        self,
        op: Operation,
        operands: Sequence[Value] | None = None,
        result_types: Sequence[Type] | None = None,
    ) -> Operation:
        types = [thread_type(r.type) for r in op.results] if result_types is None else result_types
        return super().copy(op, operands, types)

    # ---- dispatch -----------------------------------------------------------------------
    def rewrite(self, op: Operation) -> Sequence[Value] | None:
        method = getattr(self, f"lower_{type(op).__name__}", None)
        if method is None:
            return self.copy(op).results
        try:
            return method(op)
        except VerifyError as error:  # layouts it cannot lower (slot maps): placed at the op
            if error.location is not None:
                raise
            raise VerifyError(f"'{op.name}': {error.message}", op.location, error.hint) from None

    def add(self, op: Operation) -> Value:
        return self.builder.add(op)

    def scratch_slots(self, lanes: int, threads: int) -> tuple[int, list[int]]:
        """Where a thread's `lanes` lie in an exchange scratch of `threads` x `lanes`: the
        stride of its first from the thread index, and each lane's offset from it. On the GPU
        lane l of every thread is one row (neighbouring threads in neighbouring banks: no
        conflict); on the CPU a thread's lanes are contiguous (one vector access)."""
        if self.target == "cuda":
            return 1, [lane * threads for lane in range(lanes)]
        return lanes, list(range(lanes))

    def shuffle(self, vector: Value, indices: list[int]) -> Value:
        if indices == list(range(as_vector(vector.type).size)):
            return vector
        return self.add(ShuffleOp.create([vector], indices))
