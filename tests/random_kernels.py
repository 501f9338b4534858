"""Random valid kernels for differential testing: elementwise expression trees (some in a `def`)
over loaded tiles of random dtypes (packed ones included; some loads and stores masked, some
rows or columns gathered; arithmetic, bit operations, exp/log/sin/cos/tanh/erf, rsqrt,
rounding), broadcasts, casts between compute dtypes, tiles regrouped into blocks of columns
(reshape, index, ranges, stack, new axes), optional reductions along either axis, random tile
sizes, thread counts and tensor sizes that rarely divide the tiles; loops over column tiles
through shared memory, some stopping at a column read from memory; long rows walked a wide tile
a step, running sums or extremes carried per column; tiles stored and read back by other threads
without `sync()`; and tiled matrix products (`dot` of f16/bf16/f32/i8 tiles in a loop over K,
random pipeline depths, operands straight from memory, through shared memory, or copied there
unchanged, weights of any storage type cast to the operand type).

`random_case(rng)` gives the kernel source, its parameters and a function that makes random
arguments. The kernels are built so that every target must compute the same values: no
overflowing float math (exp of bounded values only), integer ops whose results the language
defines (wrapping, shifts modulo the width, division by zero gives 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import lpir

COMPUTE_FLOATS = ["f32", "f16", "bf16"]
COMPUTE_INTS = ["i32", "i16", "i8", "u8", "u16", "u32"]
STORAGE = [
    "f32", "f16", "bf16", "i32", "i8", "u8", "u16",
    "u1", "u3", "u4", "i5", "u6", "i7", "f4e2m1", "f6e3m2", "f8e4m3", "f8e5m2",
]  # fmt: skip


@dataclass
class Case:
    source: str
    params: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # (dtype name, shape) per argument
    description: str = ""
    compute: str = "f32"

    def arguments(self, rng) -> list:
        return [random_array(dt, shape, rng) for dt, shape in self.inputs]


def random_array(name: str, shape: tuple[int, ...], rng):
    dt = lpir.dtype(name)
    if dt.is_float:
        values = rng.standard_normal(shape) * 2.0
        if dt.nbits < 16 or dt.name.startswith("f8"):
            return lpir.pack(np.clip(values, -float(dt.max), float(dt.max)), dt)
        return values.astype(dt.numpy_dtype)
    low, high = int(dt.min), int(dt.max)
    values = rng.integers(low, high + 1, size=shape, dtype=np.int64)
    if dt.nbits < 8:
        return lpir.pack(values, dt)
    return values.astype(dt.numpy_dtype)


class Expressions:
    """Random expression text of one compute dtype over a set of leaf names."""

    def __init__(self, rng, compute: str, leaves: list[str]):
        self.rng = rng
        self.compute = compute
        self.is_float = lpir.dtype(compute).is_float
        self.leaves = leaves

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def constant(self) -> str:
        if self.is_float:
            return self.pick(["0.5", "1.0", "2.0", "0.25", "3.0"])
        # never 0: dividing a constant by a constant 0 is a compile-time error
        return str(int(self.rng.integers(1, 5)))

    def expression(self, depth: int) -> str:
        if depth == 0 or self.rng.random() < 0.2:
            return self.pick(self.leaves) if self.rng.random() < 0.85 else self.constant()
        a, b = self.expression(depth - 1), self.expression(depth - 1)
        if a[0].isdigit():  # no constant-only subexpressions: `1 - 4` folds to -3, which no
            a = self.pick(self.leaves)  # unsigned operand could take (a compile-time error)
        if self.is_float:
            forms = [
                f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"max({a}, {b})",
                f"min({a}, {b})", f"where({a} > {b}, {a}, {b})", f"abs({a})",
                f"exp(clamp({a}, -4.0, 4.0))", f"sqrt(abs({a}))", f"floor({a})",
                f"exp2(clamp({a}, -4.0, 4.0))", f"log(abs({a}) + 1.0)", f"log2(abs({a}) + 0.5)",
                f"sin(clamp({a}, -8.0, 8.0))", f"cos(clamp({a}, -8.0, 8.0))", f"tanh({a})",
                f"rsqrt(abs({a}) + 0.25)", f"ceil({a})", f"round({a})", f"erf({a})",
                f"clamp({a}, -1.5, {b})", f"({a} / (abs({b}) + 1.0))",
            ]  # fmt: skip
        else:
            forms = [
                f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"({a} & {b})",
                f"({a} | {b})", f"({a} ^ {b})", f"({a} >> {b})", f"({a} << {b})",
                f"({a} / {b})", f"({a} % {b})", f"max({a}, {b})",
                f"where({a} < {b}, {a}, {b})",
            ]  # fmt: skip
        return self.pick(forms)


def random_case(rng) -> Case:
    """One random kernel (see the module docstring): one tile per block, a loop over column
    tiles through shared memory, a walk along long rows, or a pipelined loop of `dot`s."""
    draw = rng.random()
    if draw < 0.25:
        return dot_case(rng)
    if draw < 0.45:
        return looped_case(rng)
    if draw < 0.6:
        return streamed_case(rng)
    if draw < 0.7:
        return read_back_case(rng)
    return tile_case(rng)


def random_layout(rng, rows: int, columns: int, threads: int) -> str | None:
    """A layout annotation for a [rows, columns] tile over `threads`, or None if none fits:
    threads spread p x q over the tile, each holding a local block, in either order."""
    options = []
    for p in (1, 2, 4, 8, 16, 32, 64, 128):
        q = threads // p
        if p * q == threads and rows % p == 0 and columns % q == 0:
            local = f"local({rows // p},{columns // q})"
            options += [f"spatial({p},{q}).{local}", f"{local}.spatial({p},{q})"]
            if rows // p > 1 and columns // q > 1:
                half = f"local({rows // p // 2},{columns // q // 2})"
                options.append(f"local(2,2).spatial({p},{q}).{half}")
    if not options:
        return None
    return options[int(rng.integers(len(options)))]


def _types(rng) -> tuple[str, str, str, str]:
    """(compute, TA, TB, TO). Float results are compared within a tolerance, so they are stored
    as f32: rounding them to a narrow type could turn a last-bit difference into a whole step."""
    compute = str(rng.choice(COMPUTE_FLOATS + COMPUTE_INTS))
    a_type, b_type = str(rng.choice(STORAGE)), str(rng.choice(STORAGE))
    out_type = "f32" if compute in COMPUTE_FLOATS else str(rng.choice(STORAGE))
    return compute, a_type, b_type, out_type


def _store_mask(rng, out_shape: tuple[int, ...], along_rows: bool) -> str:
    """Mostly nothing; else `, mask = ...` choosing the stored elements by their row or column
    (memory keeps its random values elsewhere) or, for 2-d tiles, by the values (`a > b`).
    `along_rows`: a 1-d result is a row's reductions (out[r :+ BM]), else a column's."""
    if rng.random() < 0.7:
        return ""
    modulus = int(rng.integers(2, 5))
    if len(out_shape) == 1:
        length, start = ("BM", "r") if along_rows else ("BN", "c")
        return f", mask = (arange({length}) + {start}) % {modulus} != 1"
    choices = [
        f", mask = ((arange(BN) + c) % {modulus} != 1)[None, :]",
        f", mask = ((arange(BM) + r) % {modulus} == 0)[:, None]",
        ", mask = a > b",
    ]
    return str(rng.choice(choices))


def _load_mask(rng) -> str:
    """Mostly nothing; else `, mask = ...` (and maybe `, other = 1`) reading a [BM, BN] tile
    only by its column or row, or where the tile of y is positive."""
    if rng.random() < 0.7:
        return ""
    modulus = int(rng.integers(2, 5))
    choices = [
        f", mask = ((arange(BN) + c) % {modulus} != 0)[None, :]",
        f", mask = ((arange(BM) + r) % {modulus} == 1)[:, None]",
        ", mask = (cast<f32>(load(y[c :+ BN])) > 0.0)[None, :]",
    ]
    other = ", other = 1" if rng.random() < 0.5 else ""
    return str(rng.choice(choices)) + other


def _gathered(rng, length: str, start: str, extent: str) -> str | None:
    """Mostly None; else a 1-d i32 tile of positions for a tile dimension of `length`, spread
    over the tensor's `extent` with some just outside it (read as 0): a gather."""
    if rng.random() < 0.8:
        return None
    stride = int(rng.choice([1, 3, 5, 7]))
    return f"(arange({length}) * {stride} + {start}) % ({extent} + 2) - 1"


def tile_case(rng) -> Case:
    rows, columns = int(rng.integers(1, 70)), int(rng.integers(1, 300))
    tile_rows = int(rng.choice([1, 2, 4, 8, 16]))
    tile_columns = int(rng.choice([16, 32, 64, 128]))
    threads = int(rng.choice([32, 64, 128]))
    compute, a_type, b_type, out_type = _types(rng)
    reduce = rng.random() < 0.3
    expressions = Expressions(rng, compute, ["a", "b", "a", "b"])
    body = expressions.expression(int(rng.integers(1, 4)))
    row_start, column_start = "block.x * BM", "block.y * BN"
    if reduce:
        kinds = ["sum", "max", "min"]
        if compute in COMPUTE_INTS:  # float positions could differ where FMAs round otherwise
            kinds += ["argmax", "argmin"]
        kind = str(rng.choice(kinds))
        axis = int(rng.integers(2))
        # f16/bf16 sums of hundreds of terms round at every step, and their order is each
        # target's own: accumulate in f32, as a real kernel would.
        summed = "cast<f32>(e)" if kind == "sum" and compute in ("f16", "bf16") else "e"
        result = f"{kind}({summed}, axis = {axis})"
        if axis == 1:  # a whole row per block, so the reduction sees every column
            tile_columns = 1 << max(4, (columns - 1).bit_length())
            out_decl, out_shape = "out: global TO[M]", (rows,)
            store = "store(out[r :+ BM], cast<TO>(v))"
            grid = "blocks(cdiv(M, BM))"
            column_start = "0"
        else:  # a whole column per block
            tile_rows = 1 << (rows - 1).bit_length()
            out_decl, out_shape = "out: global TO[N]", (columns,)
            store = "store(out[c :+ BN], cast<TO>(v))"
            grid = "blocks(cdiv(N, BN))"
            row_start, column_start = "0", "block.x * BN"
    else:
        result = "e"
        out_decl, out_shape = "out: global TO[M, N]", (rows, columns)
        store = "store(out[r :+ BM, c :+ BN], cast<TO>(v))"
        grid = "blocks(cdiv(M, BM), cdiv(N, BN))"
    store = store[:-1] + _store_mask(rng, out_shape, "out[r :+ BM]" in store) + ")"
    if tile_rows * tile_columns < threads:
        tile_columns = max(tile_columns, -(-threads // tile_rows))
    layout = random_layout(rng, tile_rows, tile_columns, threads) if rng.random() < 0.3 else None
    annotation = f" @ {layout}" if layout else ""
    regroup, draw = "", rng.random()
    if draw < 0.15:  # each block of the row's columns plus its first block
        f = int(rng.choice([2, 4]))
        blocks = f"reshape(e, BM, {f}, BN / {f})"
        regroup = f"\n    e = reshape({blocks} + {blocks}[:, 0, :][:, None, :], BM, BN)"
    elif draw < 0.25:  # the row's halves interleaved, second half first
        halves = "reshape(e, BM, 2, BN / 2)"
        pair = f"{halves}[:, 1, :], {halves}[:, 0, :]"
        regroup = f"\n    e = reshape(stack({pair}, axis = -1), BM, BN)"
    elif draw < 0.35:  # the row's halves swapped, by ranges
        halves = "e[:, BN / 2 :], e[:, 0 : BN / 2]"
        regroup = f"\n    e = reshape(stack({halves}, axis = 1), BM, BN)"
    helper, computed = "", f"({body})"
    if rng.random() < 0.3:  # the expression in a def, called by position or by name
        helper = f"def combine(a, b) {{\n    return {body}\n}}\n"
        computed = str(rng.choice(["combine(a, b)", "combine(b = b, a = a)"]))
    load_mask = _load_mask(rng)
    gathered_rows = _gathered(rng, "BM", "r", "M")
    gathered_columns = _gathered(rng, "BN", "c", "N")
    source = (
        helper
        + f"""
kernel random_kernel[M, N, TA, TB, TO, BM = {tile_rows}, BN = {tile_columns}](
    x: global TA[M, N], y: global TB[N], {out_decl},
) {grid} threads({threads}) {{
    r = {row_start}
    c = {column_start}
    a = cast<{compute}>(load(x[{gathered_rows or "r :+ BM"}, c :+ BN]{load_mask}))
    b = cast<{compute}>(load(y[{gathered_columns or "c :+ BN"}]))[None, :]
    e = ({computed} + zeros<{compute}>[BM, BN]){annotation}{regroup}
    v = {result}
    {store}
}}
"""
    )
    params = {"TA": a_type, "TB": b_type, "TO": out_type}
    inputs = [(a_type, (rows, columns)), (b_type, (columns,)), (out_type, out_shape)]
    shapes = f"{rows}x{columns}, tile {tile_rows}x{tile_columns}, layout {layout}"
    reduced = f"{kind} over axis {axis}" if reduce else "none"
    gathers = f" rows {gathered_rows}" if gathered_rows else ""
    gathers += f" columns {gathered_columns}" if gathered_columns else ""
    description = f"{compute}: {body}{regroup} (reduction: {reduced}, {shapes}){load_mask}{gathers}"
    return Case(source, params, inputs, description, compute)


def read_back_case(rng) -> Case:
    """A block stores a tile (in a random layout) and reads it back row by row, or a loop
    reads, in another layout, the chunk of the row its previous iteration stored: no
    `sync()` is written, the compiler must order the accesses (passes/insert_syncs.py).
    `out` (compared) is what was read back; `scratch` what was stored."""
    rows = int(rng.integers(1, 40))
    tile_rows = int(rng.choice([1, 2, 4, 8]))
    threads = int(rng.choice([8, 32, 64, 128]))
    compute, a_type, b_type, out_type = _types(rng)
    body = Expressions(rng, compute, ["a", "b", "a"]).expression(int(rng.integers(1, 3)))
    if rng.random() < 0.5:  # the tile stored whole, then its rows read one by one
        columns = int(rng.choice([64, 128, 256]))
        layout = random_layout(rng, tile_rows, columns, threads)
        annotation = f" @ {layout}" if layout and rng.random() < 0.7 else ""
        walk = f"""
    a = cast<{compute}>(load(x[r :+ BM, :]))
    b = cast<{compute}>(load(y[:]))[None, :]
    store(scratch[r :+ BM, :], (({body}) + zeros<{compute}>[BM, N]){annotation})
    for i in range(0, BM) {{
        store(out[r + i, :], cast<TO>(load(scratch[r + i, :]) + load(scratch[r + i, :])))
    }}"""
        shape = f"rows back one by one, layout {annotation or 'chosen'}"
    else:  # each chunk of the row from x and the chunk before it as stored, read otherwise
        chunk = 256
        columns = chunk * int(rng.choice([3, 4, 8]))
        across, local = threads // tile_rows, chunk * tile_rows // threads
        stored = f" @ spatial({tile_rows},{across}).local(1,{local})"
        read = f" @ local(1,{local}).spatial({tile_rows},{across})"
        computed = f"(({body}) + zeros<{compute}>[BM, {chunk}]){stored}"
        first = f"cast<{compute}>(load(x[r :+ BM, 0 :+ {chunk}])){stored}"
        walk = f"""
    store(scratch[r :+ BM, 0 :+ {chunk}], {first})
    for c in range({chunk}, N, {chunk}) {{
        before = load(scratch[r :+ BM, c - {chunk} :+ {chunk}]){read}
        a = cast<{compute}>(load(x[r :+ BM, c :+ {chunk}]))
        b = cast<{compute}>(load(y[c :+ {chunk}]))[None, :]
        store(out[r :+ BM, c :+ {chunk}], cast<TO>(before))
        store(scratch[r :+ BM, c :+ {chunk}], {computed})
    }}"""
        shape = f"chunks of {chunk} after the one before, stored{stored}, read{read}"
    source = f"""
kernel random_read_back[M, N, TA, TB, TO, BM = {tile_rows}](
    x: global TA[M, N], y: global TB[N], out: global TO[M, N], scratch: global {compute}[M, N],
) blocks(cdiv(M, BM)) threads({threads}) {{
    r = block.x * BM{walk}
}}
"""
    params = {"TA": a_type, "TB": b_type, "TO": out_type}
    inputs = [
        (a_type, (rows, columns)),
        (b_type, (columns,)),
        (out_type, (rows, columns)),
        (compute, (rows, columns)),
    ]
    description = f"{compute}: {body} stored and read back ({rows}x{columns}, {shape})"
    return Case(source, params, inputs, description, compute)


def looped_case(rng) -> Case:
    """Rows reduced over a loop of column tiles, each staged through shared memory between
    barriers, with an accumulator carried by the loop."""
    rows, columns = int(rng.integers(1, 50)), int(rng.integers(1, 400))
    tile_rows = int(rng.choice([2, 4, 8, 16]))
    tile_columns = int(rng.choice([16, 32, 64]))
    threads = int(rng.choice([32, 64, 128]))
    while tile_rows * tile_columns < threads:
        tile_columns *= 2
    compute, a_type, b_type, out_type = _types(rng)
    kind = str(rng.choice(["sum", "max", "min"]))
    accumulator = "f32" if compute in ("f16", "bf16") and kind == "sum" else compute
    combine = "acc + part" if kind == "sum" else f"{kind}(acc, part)"
    start_value = {"max": f"(min_value({accumulator}))", "min": f"(max_value({accumulator}))"}
    expressions = Expressions(rng, compute, ["a", "b", "a", "b"])
    body = expressions.expression(int(rng.integers(1, 3)))
    initial = f"zeros<{accumulator}>[BM]" if kind == "sum" else f"full<{accumulator}>[BM]"
    initial += start_value.get(kind, "")
    # some loops stop at a column read from memory: a run-time bound of a loop with barriers
    ragged = rng.random() < 0.3
    stop = "N - (cast<i32>(load(y[0])) & 63)" if ragged else "N"
    source = f"""
kernel random_loop[M, N, TA, TB, TO, BM = {tile_rows}, BN = {tile_columns}](
    x: global TA[M, N], y: global TB[N], out: global TO[M],
) blocks(cdiv(M, BM)) threads({threads}) {{
    r = block.x * BM
    staged = shared<{compute}>[BM, BN]
    acc = {initial}
    let stop = {stop}
    for c in range(0, stop, BN) {{
        a = cast<{compute}>(load(x[r :+ BM, c :+ BN]))
        b = cast<{compute}>(load(y[c :+ BN]))[None, :]
        store(staged, ({body}) + zeros<{compute}>[BM, BN])
        sync()
        part = {kind}(cast<{accumulator}>(load(staged)), axis = 1)
        acc = {combine}
        sync()
    }}
    store(out[r :+ BM], cast<TO>(acc))
}}
"""
    params = {"TA": a_type, "TB": b_type, "TO": out_type}
    inputs = [(a_type, (rows, columns)), (b_type, (columns,)), (out_type, (rows,))]
    description = (
        f"{compute}: loop {kind} of {body} ({rows}x{columns}, tile {tile_rows}x{tile_columns}"
        f"{', stopping at a column read from y' if ragged else ''})"
    )
    return Case(source, params, inputs, description, compute)


def streamed_case(rng) -> Case:
    """Long rows walked a wide tile a step without barriers (greedy.lp's loop): each column
    of the tile keeps a running sum, maximum or minimum across the steps, masked past the
    row's end, and the columns meet once at the end. Steps of a page or more split over the
    threads run interleaved on the CPU (backends/llvm/plan.py)."""
    rows, columns = int(rng.integers(1, 7)), int(rng.integers(1000, 20000))
    tile_rows = int(rng.choice([1, 2]))
    tile_columns = int(rng.choice([1024, 2048, 4096]))
    threads = int(rng.choice([32, 64, 128, 256]))
    compute, a_type, b_type, out_type = _types(rng)
    if rng.random() < 0.5:  # 2 and 4 bytes an element: the steps of 4 KiB and more
        a_type = str(rng.choice(["f32", "f16", "bf16", "i32", "u16"]))
    kind = str(rng.choice(["sum", "max", "min"]))
    accumulator = "f32" if compute in ("f16", "bf16") and kind == "sum" else compute
    combine = "acc + part" if kind == "sum" else f"{kind}(acc, part)"
    start = {"sum": "0", "max": f"min_value({accumulator})", "min": f"max_value({accumulator})"}
    body = Expressions(rng, compute, ["a", "b", "a"]).expression(int(rng.integers(1, 3)))
    source = f"""
kernel random_stream[M, N, TA, TB, TO, BM = {tile_rows}, BN = {tile_columns}](
    x: global TA[M, N], y: global TB[N], out: global TO[M],
) blocks(cdiv(M, BM)) threads({threads}) {{
    r = block.x * BM
    acc = full<{accumulator}>[BM, BN]({start[kind]})
    for c in range(0, N, BN) {{
        a = cast<{compute}>(load(x[r :+ BM, c :+ BN]))
        b = cast<{compute}>(load(y[c :+ BN]))[None, :]
        part = cast<{accumulator}>(({body}) + zeros<{compute}>[BM, BN])
        acc = where(c + arange(BN)[None, :] < N, {combine}, acc)
    }}
    store(out[r :+ BM], cast<TO>({kind}(acc, axis = 1)))
}}
"""
    params = {"TA": a_type, "TB": b_type, "TO": out_type}
    inputs = [(a_type, (rows, columns)), (b_type, (columns,)), (out_type, (rows,))]
    description = (
        f"{compute}: streamed {kind} of {body} ({rows}x{columns}, tile {tile_rows}x"
        f"{tile_columns}, {threads} threads)"
    )
    return Case(source, params, inputs, description, compute)


# Storage types each dot operand type may be cast from: any whose values the operand's range
# holds for the floats (the casts are bit-exact on every target, so only the order of the f32
# additions differs; i32 and u16 values would round to f16's infinities, and inf x 0 is NaN),
# integers for i8 (a float's conversion to i8 saturates, which is exact too, but integer inputs
# keep the sums away from the i32 limit).
DOT_STORAGE = {
    "f16": [name for name in STORAGE if name not in ("i32", "u16")],
    "bf16": STORAGE,
    "f32": ["f32", "f16", "bf16", "i8", "u4", "i5", "f8e4m3", "f6e3m2"],
    "i8": ["i8", "u1", "u3", "u4", "i5", "u6", "i7"],
}


def dot_case(rng) -> Case:
    """C[M, N] = A[M, K] @ B[K, N] by BM x BN tiles, over K in BK steps with a random pipeline
    depth: A's tile straight from memory, through a shared tile (cast, then stored), or copied
    into one unchanged; B's tile cast from any storage type, read as stored, transposed or as
    one column repeated (a vector broadcast into the mma's columns); the
    result stored, stored transposed (C^T), or with K split over blocks added in atomically."""
    operand = str(rng.choice(["f16", "f16", "bf16", "f32", "i8"]))
    accumulator = "i32" if operand == "i8" else "f32"
    rows, columns, depth = (int(rng.integers(1, n)) for n in (70, 100, 200))
    tile_rows = int(rng.choice([16, 32, 64]))
    tile_columns = int(rng.choice([8, 16, 32, 64]))
    tile_depth = int(rng.choice([16, 32, 64]))
    threads = int(rng.choice([32, 64, 128]))
    a_type = operand if rng.random() < 0.5 else str(rng.choice(DOT_STORAGE[operand]))
    b_type = str(rng.choice(DOT_STORAGE[operand]))
    a_path = str(
        rng.choice(["direct", "shared", "copied"] if a_type == operand else ["direct", "shared"])
    )
    b_form = str(rng.choice(["stored", "stored", "transposed", "column"]))
    stages = int(rng.choice([0, 1, 2, 3, 4]))  # 0: the target's default
    output = str(rng.choice(["store", "store", "transposed", "atomic"]))
    split = int(rng.choice([1, 2, 3])) if output == "atomic" else 1

    a_tile = "load(a[r :+ BM, k0 :+ BK])"
    a_cast = a_tile if a_type == operand else f"cast<{operand}>({a_tile})"
    if a_path == "direct":
        shared, a_read, after = "", f"at = {a_cast}", ""
    else:
        stored = a_tile if a_path == "copied" else a_cast
        shared = f"sa = shared<{operand}>[BM, BK]"
        a_read = f"store(sa, {stored})\n        sync()\n        at = load(sa)"
        after = "sync()"
    if b_form == "transposed":
        b_declaration, b_shape = "b: global TB[N, K]", (columns, depth)
        b_read = f"bt = transpose(cast<{operand}>(load(b[c :+ BN, k0 :+ BK])))"
    elif b_form == "column":  # one column in all BN (a GEMV's x in an mma's columns)
        b_declaration, b_shape = "b: global TB[K]", (depth,)
        b_read = f"bt = cast<{operand}>(load(b[k0 :+ BK]))[:, None] * ones<{operand}>[1, BN]"
    else:
        b_declaration, b_shape = "b: global TB[K, N]", (depth, columns)
        b_read = f"bt = cast<{operand}>(load(b[k0 :+ BK, c :+ BN]))"
    accumulate = "acc = dot(at, bt, acc)" if rng.random() < 0.5 else "acc += dot(at, bt)"
    if output == "transposed":
        out_declaration, out_shape = f"out: global {accumulator}[N, M]", (columns, rows)
        result = "store(out[c :+ BN, r :+ BM], transpose(acc))"
    else:
        out_declaration, out_shape = f"out: global {accumulator}[M, N]", (rows, columns)
        verb = "atomic_add" if output == "atomic" else "store"
        result = f"{verb}(out[r :+ BM, c :+ BN], acc)"
    pipeline = f", stages = {stages}" if stages else ""
    source = f"""
kernel random_dot[M, N, K, TA, TB, BM = {tile_rows}, BN = {tile_columns}, BK = {tile_depth},
                  SPLIT = {split}](
    a: global TA[M, K], {b_declaration}, {out_declaration},
) blocks(cdiv(M, BM), cdiv(N, BN), SPLIT) threads({threads}) {{
    r = block.x * BM
    c = block.y * BN
    chunk = cdiv(cdiv(K, SPLIT), BK) * BK
    {shared}
    acc = zeros<{accumulator}>[BM, BN]
    for i in range(0, chunk, BK{pipeline}) {{
        k0 = block.z * chunk + i
        {a_read}
        {b_read}
        {accumulate}
        {after}
    }}
    {result}
}}
"""
    params = {"TA": a_type, "TB": b_type}
    inputs = [(a_type, (rows, depth)), (b_type, b_shape), (accumulator, out_shape)]
    description = (
        f"dot of {operand}: A {a_type} ({a_path}), B {b_type} ({b_form}), "
        f"{rows}x{columns}x{depth}, tile {tile_rows}x{tile_columns}x{tile_depth}, "
        f"{threads} threads, stages {stages or 'default'}, {output}, split {split}"
    )
    # f32 accumulation of the products, whatever the operands: compared as f32 sums
    return Case(source, params, inputs, description, "i8" if operand == "i8" else "f32")
