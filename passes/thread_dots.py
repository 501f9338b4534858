"""lower-to-threads' dots: `mma.sync` fragments on tensor cores (CUDA: f16/bf16 by m16n8k16 into
f32, i8 by m16n8k32 into i32), and ordinary arithmetic elsewhere (an FMA per step, sums kept in
lanes, bf16 pairs on CPUs with dot-product instructions).
"""

from __future__ import annotations

from lpir.passes.layout_rules import (
    PAIR_DISTANCES,
    mma_k,
    mma_k_permutation,
    mma_layouts,
    mma_layouts_permuted,
    mma_warps,
    steps_in_registers,
)
from lpir.passes.thread_lowering import ThreadLowering, tile_layout
from lpir.passes.thread_values import required_step_slot_maps

from lpir.dtypes import DType
from lpir.ir.core import Value
from lpir.ir.ops import (
    BinaryOp,
    CastOp,
    DotOp,
    DotPairsOp,
    MmaOp,
    ReduceLanesOp,
    ShuffleOp,
    VectorConstantOp,
)
from lpir.ir.types import as_tile, as_vector
from lpir.layout import RegisterLayout
from lpir.targets import Target, get_target


class DotLowering(ThreadLowering):
    """`lower_DotOp`: tensor cores where the operands hold mma fragments, else `simt_dot`."""

    def lower_DotOp(self, op: DotOp) -> list[Value]:
        a_old, b_old, acc_old = op.operands
        m, n = as_tile(acc_old.type).shape
        k = as_tile(a_old.type).shape[1]
        k_step = mma_k(a_old.type.dtype)
        if self.target == "cuda" and k_step is not None:
            threads = tile_layout(acc_old).threads
            operands = (tile_layout(a_old), tile_layout(b_old))
            # (mma_layouts_permuted splits the warps by rows, as mma_layouts with split_rows;
            # it is built for m16n8k16 only)
            variants: list[tuple[bool, int | None]] = [(False, None), (True, None)]
            if k_step == 16:
                variants += [(True, p) for p in PAIR_DISTANCES]
            for split_rows, pair in variants:
                canonical = mma_layouts(m, n, k, threads, split_rows, k_step)
                if canonical is None or canonical[2] != tile_layout(acc_old):
                    continue
                candidate: tuple[RegisterLayout, RegisterLayout] | None
                if pair is None:
                    candidate = canonical[:2]
                else:
                    candidate = mma_layouts_permuted(m, n, k, threads, pair)
                if operands == candidate:
                    warps = mma_warps(m, n, k, threads, split_rows, k_step)
                    assert warps is not None  # mma_layouts found them (canonical is not None)
                    return [self.mma_dot(op, canonical, warps, mma_k_permutation(k, pair))]
        return [self.simt_dot(op)]

    def mma_dot(
        self,
        op: DotOp,
        canonical: tuple[RegisterLayout, RegisterLayout, RegisterLayout],
        warps: tuple[int, int],
        permutation: list[int],
    ) -> Value:
        """Tensor cores: per m16n8 accumulator atom a thread holds, one mma per step of k
        (m16n8k16 for f16/bf16, m16n8k32 for i8: `mma_k`).

        `warps` is the (m, n) grid of warps (`mma_warps`); the fragments are the slots that
        hold, in the operands' layouts, what the canonical fragment layouts (`mma_layouts`)
        hold, with k renumbered by `permutation` (identity, or that of
        `layout_rules.mma_layouts_permuted`)."""
        a, b, acc = (self.map(v) for v in op.operands)
        m, n = as_tile(op.result.type).shape
        k = as_tile(op.operands[0].type).shape[1]
        k_step = mma_k(op.operands[0].type.dtype)
        assert k_step is not None  # lower_DotOp: the dot has a tensor-core form
        shape = f"m16n8k{k_step}"
        a_lanes, b_lanes = k_step // 2, k_step // 4  # a thread's fragment lanes: 8 and 4, or 16, 8
        warps_m, warps_n = warps
        repeat_m, repeat_n, steps = m // 16 // warps_m, n // 8 // warps_n, k // k_step
        a_slots = _fragment_slots(canonical[0], tile_layout(op.operands[0]), permutation, 1)
        b_slots = _fragment_slots(canonical[1], tile_layout(op.operands[1]), permutation, 0)
        fragments = []
        for i in range(repeat_m):
            for j in range(repeat_n):
                atom = (i * repeat_n + j) * 4
                c = self.shuffle(acc, list(range(atom, atom + 4)))
                for step in range(steps):
                    a_start = (i * steps + step) * a_lanes
                    b_start = (step * repeat_n + j) * b_lanes
                    a_fragment = self.shuffle(a, a_slots[a_start : a_start + a_lanes])
                    b_fragment = self.shuffle(b, b_slots[b_start : b_start + b_lanes])
                    c = self.add(MmaOp.create(a_fragment, b_fragment, c, shape))
                fragments.append(c)
        if len(fragments) == 1:
            return fragments[0]
        return self.add(ShuffleOp.create(fragments, list(range(4 * len(fragments)))))

    def simt_dot(self, op: DotOp) -> Value:
        """A dot on ordinary arithmetic: each accumulator slot a thread holds adds the products
        of its row of a and column of b (the layouts give the thread both whole).

        Where the thread's accumulator fills a vector register, one vector multiply-add per
        step of k updates all its slots (the order of k, an FMA each on a CPU). On the CPU,
        where it holds at most a register's lanes of slots (a GEMV's [64, 8] accumulator over
        128 threads: 4), that would be one dependent add per step, at the adder's latency; there
        each slot's k products are one wide multiply and summed by `reduce_lanes` instead, then
        added to the slot. Where k spans several registers, lane l of a register first sums its
        steps l, l + 16, l + 32, ... in order (one product vector per 16 steps, a slice of a's
        row times one of b's column: whole registers, no shuffling; LLVM contracts each multiply
        and add into an FMA, and the slots' registers are independent chains) and then the 16
        lanes are summed (after the loop, where defer-lane-sums applies): skinny_wq's [64, 16]
        accumulator over 128 threads (8 slots, k = 128) took 27 ms on the CPU as one balanced
        tree over k, 12 ms so with the steps as a balanced tree, 5.2 ms in order and deferred.
        A shuffle feeding an operand (a transposed tile) is folded into the dot's own. On the
        CPU, bf16 operands into f32 take two steps of k at a time in either form (`pair_steps`,
        `pair_lane_sums`: `dot_pairs`, 32 products an instruction where the host has
        AVX512-BF16). A dot's order of additions is each target's own (the interpreter's is
        exact)."""
        a_old, _, acc_old = op.operands
        k = as_tile(a_old.type).shape[1]
        acc_dtype = acc_old.type.dtype
        a, b, acc = (self.map(v) for v in op.operands)
        a_steps, b_steps = self._dot_slots(op, k)
        target = get_target(self.target)
        register_lanes = target.lanes(acc_dtype.nbits)
        in_steps = target.is_gpu or steps_in_registers(tile_layout(acc_old), target) or k < 8
        if _multiplies_in_pairs(a, acc, k, target):
            if in_steps:
                return self.pair_steps(a, b, acc, a_steps, b_steps)
            return self.pair_lane_sums(a, b, acc, a_steps, b_steps, register_lanes)
        if in_steps:
            if a.type.dtype != acc_dtype and self.target == "cuda":
                a = self.add(CastOp.create(a, acc_dtype))
                b = self.add(CastOp.create(b, acc_dtype))
            for a_lanes, b_lanes in zip(a_steps, b_steps):
                product = self.add(
                    BinaryOp.create(
                        "mul",
                        self.step_operand(a, a_lanes, acc_dtype),
                        self.step_operand(b, b_lanes, acc_dtype),
                    )
                )
                acc = self.add(BinaryOp.create("add", acc, product))
            return acc
        chunks, lanes, order = _lane_sum_order(k, as_vector(acc.type).size, register_lanes, 1)
        a, a_rows = _through_shuffle(a, [a_steps[step][slot] for slot, step in order])
        b, b_columns = _through_shuffle(b, [b_steps[step][slot] for slot, step in order])
        if a.type.dtype != acc_dtype:
            a = self.add(CastOp.create(a, acc_dtype))
        if b.type.dtype != acc_dtype:
            b = self.add(CastOp.create(b, acc_dtype))
        width = as_vector(acc.type).size * lanes
        products = [
            self.add(
                BinaryOp.create(
                    "mul",
                    self.shuffle(a, a_rows[c * width : (c + 1) * width]),
                    self.shuffle(b, b_columns[c * width : (c + 1) * width]),
                )
            )
            for c in range(chunks)
        ]
        total = products[0]
        for product in products[1:]:
            total = self.add(BinaryOp.create("add", total, product))
        sums = self.add(ReduceLanesOp.create(total, "sum", lanes))
        return self.add(BinaryOp.create("add", acc, sums))

    def pair_steps(
        self,
        a: Value,
        b: Value,
        acc: Value,
        a_steps: list[list[int]],
        b_steps: list[list[int]],
    ) -> Value:
        """`simt_dot` of bf16 operands whose thread adds whole registers of accumulator each
        step: steps 2p and 2p + 1 are one `dot_pairs`, each slot's two elements of a and of b
        side by side (a's pair is one 32-bit element broadcast across a row's slots)."""
        for step in range(0, len(a_steps), 2):
            a_pairs = _interleaved(a_steps[step], a_steps[step + 1])
            b_pairs = _interleaved(b_steps[step], b_steps[step + 1])
            acc = self.add(
                DotPairsOp.create(acc, self.shuffle(a, a_pairs), self.shuffle(b, b_pairs))
            )
        return acc

    def pair_lane_sums(
        self,
        a: Value,
        b: Value,
        acc: Value,
        a_steps: list[list[int]],
        b_steps: list[list[int]],
        register_lanes: int,
    ) -> Value:
        """`simt_dot` of bf16 operands summed in lanes: lane l of a slot's register adds steps
        2l and 2l + 1 of each chunk of 2 x `register_lanes` steps (one `dot_pairs` a chunk, in
        order), then `reduce_lanes` sums the lanes, as the f32 path does with products."""
        slots = as_vector(acc.type).size
        chunks, lanes, order = _lane_sum_order(len(a_steps), slots, register_lanes, 2)
        a, a_rows = _through_shuffle(a, [a_steps[step][slot] for slot, step in order])
        b, b_columns = _through_shuffle(b, [b_steps[step][slot] for slot, step in order])
        width = 2 * slots * lanes
        total = self.add(VectorConstantOp.create([0.0] * (width // 2), acc.type.dtype))
        for c in range(chunks):
            a_chunk = self.shuffle(a, a_rows[c * width : (c + 1) * width])
            b_chunk = self.shuffle(b, b_columns[c * width : (c + 1) * width])
            total = self.add(DotPairsOp.create(total, a_chunk, b_chunk))
        sums = self.add(ReduceLanesOp.create(total, "sum", lanes))
        return self.add(BinaryOp.create("add", acc, sums))

    def step_operand(self, vector: Value, lanes: list[int], dtype: DType) -> Value:
        """The lanes of a dot operand that one step of k multiplies, as `dtype`. A narrower
        operand has the distinct lanes of the step cast, then spread into the step's pattern:
        each element is still cast once (the steps read disjoint lanes), and no cast spans a
        thread's whole share of the operand (a matmul block's b, 2048 i8 lanes, took LLVM 18 s
        to compile cast whole)."""
        if vector.type.dtype == dtype:
            return self.shuffle(vector, lanes)
        distinct = sorted(set(lanes))
        narrow = self.add(CastOp.create(self.shuffle(vector, distinct), dtype))
        return self.shuffle(narrow, [distinct.index(lane) for lane in lanes])

    def _dot_slots(self, op: DotOp, k: int) -> tuple[list[list[int]], list[list[int]]]:
        """For each step of k, the slots of a and of b that each accumulator slot multiplies:
        a's element (row, step) and b's (step, column) of the accumulator's (row, column)."""
        a_old, b_old, acc_old = op.operands
        acc_layout = tile_layout(acc_old)
        a_steps = required_step_slot_maps(acc_layout, tile_layout(a_old), 1, k)
        b_steps = required_step_slot_maps(acc_layout, tile_layout(b_old), 0, k)
        return a_steps, b_steps


def _multiplies_in_pairs(a: Value, acc: Value, k: int, target: Target) -> bool:
    """Whether a CPU dot multiplies its operands two steps of k at a time (`dot_pairs`): a
    target with bf16 dot products, bf16 operands (widen-dot-operands leaves them unwidened
    there), an f32 accumulator, an even k."""
    return (
        target.bf16_dot_pairs
        and a.type.dtype.name == "bf16"
        and acc.type.dtype.name == "f32"
        and k % 2 == 0
    )


def _lane_sum_order(
    k: int, slots: int, register_lanes: int, per_lane: int
) -> tuple[int, int, list[tuple[int, int]]]:
    """(chunks, lanes, order) of a dot summed in lanes: each slot's register of `lanes` lanes
    takes `per_lane` consecutive steps a lane from each chunk of `register_lanes` x `per_lane`
    steps (one chunk of all k where they do not divide it); `order` lists the (slot, step) of
    each operand lane, chunk by chunk, slot, lane, then the lane's steps."""
    span = register_lanes * per_lane
    chunks = k // span if k % span == 0 else 1
    lanes = register_lanes if chunks > 1 else k // per_lane
    order = [
        (slot, (c * lanes + lane) * per_lane + j)
        for c in range(chunks)
        for slot in range(slots)
        for lane in range(lanes)
        for j in range(per_lane)
    ]
    return chunks, lanes, order


def _interleaved(first: list[int], second: list[int]) -> list[int]:
    """first[0], second[0], first[1], second[1], ...: each slot's two steps side by side."""
    return [lane for pair in zip(first, second) for lane in pair]


def _through_shuffle(value: Value, lanes: list[int]) -> tuple[Value, list[int]]:
    """`lanes` of `value` as lanes of what it was shuffled from, where it is a shuffle of one
    vector (a transposed tile): the dot's own shuffle then picks from the source directly,
    and the two permutations do not both reach the machine code."""
    owner = value.owner
    if isinstance(owner, ShuffleOp) and len(owner.operands) == 1:
        return owner.operands[0], [owner.indices[lane] for lane in lanes]
    return value, lanes


def _fragment_slots(
    canonical: RegisterLayout, layout: RegisterLayout, permutation: list[int], k_dim: int
) -> list[int]:
    """For each slot of the canonical mma operand layout, the slot of `layout` holding the same
    element with its k (dimension `k_dim`) renumbered by `permutation` (in every thread alike:
    thread 0 stands for all)."""
    slot_of = {layout.map(0, slot): slot for slot in range(layout.slots)}
    slots = []
    for slot in range(canonical.slots):
        coordinate = list(canonical.map(0, slot))
        coordinate[k_dim] = permutation[coordinate[k_dim]]
        slots.append(slot_of[tuple(coordinate)])
    return slots
