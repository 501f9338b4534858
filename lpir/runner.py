"""`lpir run`: run a kernel file on random inputs, check it, time it.

A kernel file `name.lp` may have a companion `name.py` beside it (every example does) with:

    make_inputs(params, rng) -> list     # the call's arguments, in declaration order
    reference(params, args) -> dict      # {argument index: expected values} in plain numpy
    tolerance(params) -> (rtol, atol, why)   # for float outputs; integers compare exactly
    tolerance(params, args) -> ...           # or from the inputs: atol may then be an array,
                                             # a bound per output element (`stated_tolerance`)
    canonical(params, outputs) -> list       # optional: outputs whose order the kernel leaves
                                             # free (atomics' slots) put in one order before
                                             # comparing; `reference` gives that order

Without a companion, inputs are random values of each argument's dtype and `--check` compares
the target with the reference interpreter only (the thread-IR interpreter for a thread-IR file),
within a tolerance read from the kernel, per output (`default_tolerance`): tight where each
value is a few f32 roundings, relative to the output's largest magnitude where the kernel adds
many values in an order each target chooses, never finer than one unit in the last place of
the output's dtype.

An IR text file (`.ir`) runs as it is, with the parameters it records (`lpir.runtime.ir_kernel`).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt

import lpir
from lpir.companion import (
    COMPANION_FUNCTIONS,
    checked_tolerance,
    companion_expected,
    companion_inputs,
    in_canonical_order,
    load_companion,
)
from lpir.dtypes import DType
from lpir.errors import LpirError
from lpir.ir import parse
from lpir.ir.core import Kernel, Operation, Region, Value
from lpir.ir.grid import launch_grid, static_grid
from lpir.ir.loops import trip_count
from lpir.ir.ops import (
    BroadcastOp,
    CastOp,
    ConstantOp,
    DotOp,
    ExpandDimsOp,
    ForOp,
    ItemOp,
    LoadOp,
    StoreOp,
)
from lpir.ir.types import GlobalType, TileType, Type, as_tile
from lpir.packing import PackedArray, pack_codes, pieces, storage_bytes
from lpir.runtime.ir_kernel import is_ir_path, load_ir
from lpir.runtime.specialization import Specialization
from lpir.tools import empty_grid_note


def random_argument(
    type_: Type, rng: np.random.Generator, bound: int | None = None
) -> int | float | np.ndarray | PackedArray:
    """Random contents for one argument of IR type `type_`; an integer tensor's values below
    `bound` where given (the positions it holds: `index_bounds`). Tensors are drawn a piece
    at a time (`lpir.packing.pieces`: the same numbers as one draw of the whole), packed ones
    straight into their bytes, so nothing but the result is as large as the tensor."""
    dt = type_.dtype
    if not isinstance(type_, GlobalType):
        if dt.is_bool:
            return True
        return 1.5 if dt.is_float else min(3, int(dt.max))
    shape = type_.shape
    if dt.is_packed and not dt.is_float:
        return _random_bits(shape, dt, rng)
    if dt.is_float and dt.nbits <= 8:  # small floats and fp8 travel as codes in a PackedArray
        return _random_small_floats(shape, dt, rng)
    if bound is not None and dt.is_int:
        top = max(1, min(bound, int(dt.max) + 1))  # (a table of no rows: positions 0, outside)
        return _drawn(shape, dt.numpy_dtype, lambda count: rng.integers(0, top, size=count))
    if dt.is_float:
        return _drawn(shape, dt.numpy_dtype, rng.standard_normal)
    top = 1 << min(dt.nbits, 16)
    return _drawn(
        shape,
        dt.numpy_dtype,
        lambda count: dt.from_codes(
            rng.integers(0, top, size=count, dtype=np.uint64).astype(dt.code_numpy_dtype)
        ),
    )


def _drawn(
    shape: tuple[int, ...], np_dtype: npt.DTypeLike, draw: Callable[[int], np.ndarray]
) -> np.ndarray:
    """An array of `shape` and `np_dtype` filled a piece at a time by `draw(count)`."""
    values = np.empty(math.prod(shape), np_dtype)
    for start, stop in pieces(values.size):
        values[start:stop] = draw(stop - start)
    return values.reshape(shape)


def _random_bits(shape: tuple[int, ...], dt: DType, rng: np.random.Generator) -> PackedArray:
    """A sub-byte integer or bool tensor of random codes, every one equally likely: random
    bytes (the last one's bits past the tensor 0, as `lpir.pack` leaves them)."""
    size = math.prod(shape)
    data = rng.integers(0, 256, size=storage_bytes(size, dt), dtype=np.uint8)
    used = size * dt.nbits % 8
    if used:
        data[-1] &= np.uint8((1 << used) - 1)
    return PackedArray(data, shape, dt)


def _random_small_floats(
    shape: tuple[int, ...], dt: DType, rng: np.random.Generator
) -> PackedArray:
    """A float tensor of 8 bits or fewer of random codes, every one equally likely, a NaN's or
    an infinity's made 0's (the check compares finite values)."""
    every = dt.decode(np.arange(1 << dt.nbits, dtype=dt.code_numpy_dtype))
    finite = dt.encode(np.where(np.isfinite(every), every, 0.0)).astype(np.uint8)
    size = math.prod(shape)
    data = np.empty(storage_bytes(size, dt), np.uint8)
    for start, stop in pieces(size):
        codes = finite[rng.integers(0, 1 << dt.nbits, size=stop - start, dtype=np.uint8)]
        packed = pack_codes(codes, dt).data
        first = start * dt.nbits // 8
        data[first : first + packed.size] = packed
    return PackedArray(data, shape, dt)


def index_bounds(kernel: Kernel, types: list[Type] | None = None) -> dict[int, int]:
    """{argument position: bound} for the integer tensors whose elements a tile-IR kernel
    loads and uses as they are (or cast) as a position in another tensor, e.g. `ids` in
    `load(table[load(ids[block.x]), :])`: the size of the smallest dimension they index.
    Random inputs keep such values inside it (random codes up to 2^16 would make every access
    through them fall past the tensor's edge, where it reads 0, and the run measure nothing).
    `types`: the arguments' types at the call, where a first dimension is read at run time."""
    positions = {id(arg): i for i, arg in enumerate(kernel.args)}
    sizes = {
        id(arg): getattr(types[i] if types is not None else arg.type, "shape", ())
        for i, arg in enumerate(kernel.args)
    }
    bounds: dict[int, int] = {}
    for op in kernel.walk():
        if not isinstance(op, LoadOp | StoreOp) or not isinstance(op.memory.type, GlobalType):
            continue
        for size, offset in zip(sizes.get(id(op.memory), op.memory.type.shape), op.offsets):
            source = _loaded_from(offset)
            if source is not None and id(source) in positions:
                position = positions[id(source)]
                bounds[position] = min(bounds.get(position, size), size)
    return bounds


# the most steps a loop whose bound is read from a tensor takes on random inputs
RANDOM_LOOP_STEPS = 8


def loop_bounds(kernel: Kernel) -> dict[int, int]:
    """{argument position: bound} for the integer tensors whose elements a tile-IR kernel
    loads and uses as they are (or cast) as the end of a loop, e.g. `ctx_len` in
    `for t in range(0, load(ctx_len[b]), 16)`: `RANDOM_LOOP_STEPS` steps of the loop. Random
    codes up to 2^16 would run such a loop thousands of steps (paged attention's softmax
    2600), each a rounding the check's tolerance does not count, and slowly; a test of the
    kernel keeps its lengths to a few steps, and so does a random run."""
    positions = {id(arg): i for i, arg in enumerate(kernel.args)}
    bounds: dict[int, int] = {}
    for op in kernel.walk():
        if not isinstance(op, ForOp):
            continue
        source = _loaded_from(op.upper)
        if source is None or id(source) not in positions:
            continue
        step = op.step.owner
        stride = step.attributes["value"] if isinstance(step, ConstantOp) else 1
        bound = RANDOM_LOOP_STEPS * max(1, int(stride)) + 1  # ends 0 to 8 steps in
        position = positions[id(source)]
        bounds[position] = min(bounds.get(position, bound), bound)
    return bounds


def _loaded_from(value: Value) -> Value | None:
    """The tensor whose element (elements: a gather's positions) `value` is, through `item`,
    casts and the broadcast of a tile of positions; None otherwise."""
    while isinstance(value.owner, ItemOp | CastOp | ExpandDimsOp | BroadcastOp):
        value = value.owner.operands[0]
    owner = value.owner
    return owner.memory if isinstance(owner, LoadOp) else None


def outputs_of(arguments: list) -> list:
    return [a.unpack() if isinstance(a, PackedArray) else a for a in arguments]


def stated_tolerance(companion: ModuleType, params: dict, args: list) -> Tolerance:
    """The companion's `tolerance`: of the parameters, or where it takes two, of the
    parameters and (a copy of) the call's inputs, for outputs whose rounding depends on the
    data (a sum's error on the sum of its terms' magnitudes, not on the result's)."""
    function = companion.tolerance
    if len(inspect.signature(function).parameters) == 2:
        return checked_tolerance(companion, function(params, copy.deepcopy(args)))
    return checked_tolerance(companion, function(params))


def _atol_text(atol: float | np.ndarray) -> str:
    if isinstance(atol, np.ndarray):
        return f"per element, up to {float(np.max(atol)):g}"
    return f"{atol:g}"


def compare(
    name: str,
    got: npt.ArrayLike,
    expected: npt.ArrayLike,
    rtol: float,
    atol: float | np.ndarray,
) -> tuple[bool, str]:
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        return False, f"{name}: shape {got.shape}, expected {expected.shape}"
    if isinstance(atol, np.ndarray) and atol.shape != expected.shape:
        return False, f"{name}: the tolerance's shape {atol.shape} is not the output's"
    if got.dtype.kind in "iub" and expected.dtype.kind in "iub":
        bad = int(np.count_nonzero(got != expected))
        return bad == 0, f"{name}: {bad} of {got.size} elements differ (exact)"
    got64, expected64 = got.astype(np.float64), expected.astype(np.float64)
    close = np.isclose(got64, expected64, rtol=rtol, atol=atol, equal_nan=True)
    bad = int(np.count_nonzero(~close))
    with np.errstate(invalid="ignore"):
        difference = np.abs(got64 - expected64)
    finite = difference[np.isfinite(difference)]
    error = float(finite.max()) if finite.size else 0.0
    return (
        bad == 0,
        f"{name}: {bad} of {got.size} outside rtol={rtol:g} atol={_atol_text(atol)} "
        f"(max |err| {error:.3g})",
    )


def _time(function: Callable[[], object], repeat: int = 10) -> float:
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _nbytes(arguments: list) -> int:
    total = 0
    for a in arguments:
        if isinstance(a, (PackedArray, np.ndarray)):
            total += a.nbytes
    return total


def dot_flops(kernel: Kernel, grid: Sequence[int] | None = None) -> int | None:
    """The arithmetic of a tile-IR kernel's dots: 2 M N K for each `dot` a block runs, times
    the trips of the loops around it and the blocks of the grid (tiles past a tensor's edge
    count whole), or None where a dot runs a number of times known only at run time (a loop
    of run-time bounds, an `if`). `grid`: the blocks of a call, where it is computed then."""

    def flops(op: Operation) -> int:
        if not isinstance(op, DotOp):
            return 0
        m, n = as_tile(op.result.type).shape
        return 2 * m * n * as_tile(op.operands[0].type).shape[1]

    return _per_run(kernel, flops, grid)


def accessed_bytes(kernel: Kernel, grid: Sequence[int] | None = None) -> int | None:
    """The bytes a tile-IR kernel's loads and stores of global memory move in a run: each
    tile's bytes, times the trips of the loops around it and the blocks of the grid (tiles
    past a tensor's edge count whole; what the caches serve again counts again), or None
    where an access runs a number of times known only at run time (`grid`: as for
    `dot_flops`)."""

    def nbytes(op: Operation) -> int:
        if not isinstance(op, LoadOp | StoreOp) or not isinstance(op.memory.type, GlobalType):
            return 0
        shape = op.attributes["shape"] if isinstance(op, LoadOp) else _stored_shape(op)
        return math.prod(shape) * op.memory.type.dtype.nbits // 8

    return _per_run(kernel, nbytes, grid)


def _stored_shape(op: StoreOp) -> tuple[int, ...]:
    value = op.value.type
    return value.shape if isinstance(value, TileType) else ()


def _per_run(
    kernel: Kernel, count: Callable[[Operation], int], grid: Sequence[int] | None = None
) -> int | None:
    """The sum of `count(op)` over the ops a run of the kernel executes (see `dot_flops`)."""

    def trips(loop: ForOp) -> int | None:
        owners = [bound.owner for bound in (loop.lower, loop.upper, loop.step)]
        constants = [int(op.value) for op in owners if isinstance(op, ConstantOp)]
        if len(constants) != 3:
            return None
        lower, upper, step = constants
        return trip_count(lower, upper, step)

    def region_total(region: Region) -> int | None:
        total = 0
        for op in region.ops:
            total += count(op)
            for inner in op.regions:
                inside = region_total(inner)
                if inside == 0:
                    continue
                # a loop runs its body once a trip, an `if` perhaps not at all
                times = trips(op) if isinstance(op, ForOp) else None
                if inside is None or times is None:
                    return None
                total += times * inside
        return total

    total = region_total(kernel.body)
    grid = static_grid(kernel.grid) or grid  # (None: blocks counted at a call not given)
    return None if total is None or grid is None else total * math.prod(grid)


def run_file(
    path: str | os.PathLike,
    target: str = "cpu",
    params: dict[str, object] | None = None,
    kernel: str | None = None,
    check: bool = False,
    bench: bool = False,
    seed: int = 0,
    scalars: Mapping[str, object] | None = None,
) -> bool:
    """Run, check and time a kernel file; return False when a check fails. `scalars`: values
    of scalar arguments in the random inputs (`lpir run --arg`)."""
    compiled = lpir.compile(path, target=target, kernel=kernel, **(params or {}))
    spec = compiled.specialize(None)
    values = spec.params
    companion = load_companion(path)
    rng = np.random.default_rng(seed)
    if companion is not None and scalars:
        raise LpirError(
            f"--arg sets scalars of random inputs, but {Path(companion.__file__ or '').name} "
            f"makes the inputs of {compiled.name}",
            hint="leave out --arg (the companion's make_inputs chooses the sizes), or run a "
            "copy of the kernel file without its companion .py beside it",
        )
    if companion is not None:
        arguments = companion_inputs(companion, values, rng, argument_names(spec.kernel_ir))
    else:
        arguments = random_arguments(spec, rng, scalars or {}, ir_text=is_ir_path(path))
    pristine = copy.deepcopy(arguments)
    shown = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in values.items())
    print(f"{compiled.name}[{shown}] on {target}")
    mine = copy.deepcopy(pristine)
    compiled(*mine)  # an empty grid's call too: it checks the arguments
    empty = empty_grid_note(spec.kernel_ir)
    if empty is not None and (check or bench):
        print(f"  note  {empty}, so there is nothing to check or time")
        return True
    ok = True
    if check:
        ok = _check(path, kernel, values, pristine, mine, companion, target, spec.kernel_ir)
    if bench:
        _bench(compiled, pristine, companion, values, *_tile_counts(spec, pristine))
    return ok


def argument_names(kernel: Kernel) -> list[str]:
    """The names of a kernel's arguments, in declaration order."""
    return [arg.name_hint or f"arg {index}" for index, arg in enumerate(kernel.args)]


def random_arguments(
    spec: Specialization,
    rng: np.random.Generator,
    given: Mapping[str, object] | None = None,
    ir_text: bool = False,
) -> list:
    """Random contents for each argument of a specialization, positions kept inside the
    tensors they index (`index_bounds` of its tile IR; a thread-IR file has none) and loop
    ends read from a tensor a few steps in (`loop_bounds`); `given`:
    values of scalar arguments by name (a first dimension read at run time follows its own);
    `ir_text`: the kernel comes from an IR file, whose parameters are fixed in its text."""
    args = spec.kernel_ir.args
    scalars: dict[str | None, object] = {
        a.name_hint: random_argument(a.type, rng)
        for a in args
        if not isinstance(a.type, GlobalType)
    }
    dtypes = {a.name_hint: a.type.dtype for a in args}
    for name, value in (given or {}).items():
        if name not in scalars:
            known = ", ".join(str(name) for name in scalars) or "none"
            what = ""
            if name in spec.params and ir_text:
                value = getattr(spec.params[name], "name", spec.params[name])
                what = f"{name} = {value} is a parameter fixed in the IR text (edit it there), "
            elif name in spec.params:
                what = f"parameters are set with -D {name}=..., "
            raise LpirError(
                f"--arg {name}: {spec.kernel_ir.name} has no scalar argument {name}",
                hint=f"{what}its scalar arguments: {known} (tensors are random)",
            )
        _check_given(name, value, dtypes[name])
    scalars.update(given or {})
    for arg in args:
        if not isinstance(arg.type, GlobalType) or arg.type.extent is None:
            continue
        rows = arg.type.extent
        count, bound = scalars[rows], arg.type.shape[0]
        if not (isinstance(count, int) and 0 <= count <= bound):
            raise LpirError(
                f"--arg {rows}={count}: {rows} is the number of rows of {arg.name_hint}",
                hint=f"give {rows} an integer from 0 to {bound} (the rows i32 indices reach)",
            )
    types = [concrete_type(a.type, scalars) for a in args]  # rows read at run time: counted
    source = spec.stages.get("source")
    bounds: dict[int, int] = {}
    if source is not None:
        kernel = parse(source).kernels[0]
        bounds = index_bounds(kernel, types)
        for position, bound in loop_bounds(kernel).items():
            bounds[position] = min(bounds.get(position, bound), bound)
    return [
        scalars[a.name_hint] if a.name_hint in scalars else random_argument(t, rng, bounds.get(i))
        for i, (a, t) in enumerate(zip(args, types))
    ]


def _check_given(name: str, value: object, dt: DType) -> None:
    """An --arg value must be of its argument's kind: true/false for a bool, an integer for
    an integer (a float argument takes an integer too)."""
    fits = (
        isinstance(value, bool)
        if dt.is_bool
        else not isinstance(value, bool) and (isinstance(value, int) or dt.is_float)
    )
    if not fits:
        kind = "true or false" if dt.is_bool else "an integer" if dt.is_int else "a number"
        raise LpirError(
            f"--arg {name}={str(value).lower()}: {name} is {dt.name}",
            hint=f"give {name} {kind}",
        )


def concrete_type(type_: Type, scalars: Mapping) -> Type:
    """A tensor type with its first dimension counted where a scalar argument gives it."""
    if not isinstance(type_, GlobalType) or type_.extent is None:
        return type_
    return type_.rows(int(scalars[type_.extent]))


def _tile_counts(spec: Specialization, arguments: list) -> tuple[int | None, int | None]:
    """`dot_flops` and `accessed_bytes` of a specialization's tile IR, its constants folded
    (None for thread IR), at the grid of a call with `arguments`."""
    from lpir.passes import get_pass  # the passes import the runtime: not at module level

    source = spec.stages.get("source")
    if source is None:
        return None, None
    kernel = get_pass("canonicalize").run(parse(source)).kernels[0]
    grid = launch_grid(kernel, arguments)
    return dot_flops(kernel, grid), accessed_bytes(kernel, grid)


def _check(
    path: str | os.PathLike,
    kernel: str | None,
    values: dict[str, int | DType],
    pristine: list,
    mine: list,
    companion: ModuleType | None,
    target: str,
    kernel_ir: Kernel,
) -> bool:
    """Compare the target's outputs with the oracle's and the companion's reference;
    `kernel_ir`: the target's own (the oracle's, where the target is the oracle)."""
    written = [
        i
        for i, (a, b) in enumerate(zip(outputs_of(pristine), outputs_of(mine)))
        if not np.array_equal(np.asarray(a), np.asarray(b))
    ]
    oracle_target = _oracle_target(path, kernel)
    theirs = oracle = None
    if target != oracle_target:
        params = {} if is_ir_path(path) else _plain(values)
        oracle = lpir.compile(path, target=oracle_target, kernel=kernel, **params)
        theirs = copy.deepcopy(pristine)
        oracle(*theirs)
    if companion is not None and hasattr(companion, "tolerance"):
        stated = stated_tolerance(companion, values, pristine)
        tolerances = dict.fromkeys(written or range(len(pristine)), stated)
    else:  # read from the oracle's IR (tile IR, where it shows the dots and sums) when run
        expected = outputs_of(mine if theirs is None else theirs)
        ir = kernel_ir if oracle is None or oracle.last is None else oracle.last.kernel_ir
        tolerances = default_tolerance(ir, {i: expected[i] for i in written})
    unwritten = (1e-5, 1e-6, "")  # inputs: compared only to catch a stray write

    def check(
        index: int, what: str, got: npt.ArrayLike, expected: npt.ArrayLike, always_shown: bool
    ) -> bool:
        rtol, atol, _ = tolerances.get(index, unwritten)
        good, text = compare(f"arg {index} vs {what}", got, expected, rtol, atol)
        if not good or always_shown:
            print(("  ok    " if good else "  FAIL  ") + text)
        return good

    ok = True
    if theirs is None and companion is None:
        print(f"  note  {target} is this file's reference itself: nothing to compare it with")
    elif not written:  # nothing compared would pass silently: say so
        print(
            "  note  no argument changed: the kernel wrote nothing these inputs could show "
            "(an index loaded from memory out of range? try --seed or a companion's make_inputs)"
        )
    results = in_canonical_order(companion, values, outputs_of(mine))
    if theirs is not None:
        oracle_results = in_canonical_order(companion, values, outputs_of(theirs))
        for index, (got, expected) in enumerate(zip(results, oracle_results)):
            if isinstance(got, np.ndarray):
                ok &= check(index, "interpreter", got, expected, index in written)
    if companion is not None:
        inputs = copy.deepcopy(pristine)
        expected_outputs = companion_expected(companion, values, inputs, argument_names(kernel_ir))
        for index, expected in expected_outputs.items():
            ok &= check(index, "numpy", results[index], expected, True)
    if not ok and uses_old_values(kernel_ir):
        print(
            "  note  the kernel uses atomics' old values: an output that depends on the order "
            "the atomics ran in (which slot an element took) may differ between targets and "
            "runs; a companion's canonical(params, outputs) puts it in one order"
        )
    # integer and bool outputs were compared exactly ("(exact)" above): no tolerance applies
    outputs = outputs_of(mine)
    shown = {i: t for i, t in tolerances.items() if not _compared_exactly(outputs[i])}
    for (rtol, atol, why), indices in _grouped(shown).items():
        which = (
            "" if len(indices) == len(tolerances) else (" of arg " + ", ".join(map(str, indices)))
        )
        print(f"  tolerance{which}: rtol={rtol:g} atol={atol} ({why})")
    return ok


def uses_old_values(kernel: Kernel) -> bool:
    """Whether a kernel (tile or thread IR) has an atomic whose old values it uses."""
    return any(
        op.name in ("store_global", "store_shared", "st") and op.results for op in kernel.walk()
    )


def _compared_exactly(output: object) -> bool:
    """Whether `compare` checks this output exactly: integers and bools (no tolerance)."""
    return isinstance(output, np.ndarray) and output.dtype.kind in "iub"


def _grouped(tolerances: dict[int, Tolerance]) -> dict[tuple[float, str, str], list[int]]:
    """The distinct tolerances as printed, (rtol, atol's text, why), each with the argument
    indices it applies to."""
    grouped: dict[tuple[float, str, str], list[int]] = {}
    for index, (rtol, atol, why) in sorted(tolerances.items()):
        grouped.setdefault((rtol, _atol_text(atol), why), []).append(index)
    return grouped


def adds_in_any_order(kernel: Kernel) -> bool:
    """Whether a kernel (tile or thread IR) adds many values in an order each target chooses:
    a `sum` reduction or a `dot` of tiles, an `mma` or `dot_pairs` (whose subnormals depend on
    the host), an atomic add into global memory, a thread IR's `reduce_lanes` sum (one order
    everywhere, but the CPU contracts the products it sums into FMAs, which the thread
    interpreter rounds apart: a long sum that cancels differs by ulps of its terms), a tile
    IR's `cumsum` or `cumprod` (`scan` of kind sum or prod: the interpreter combines each line
    in order, lower-to-threads in a tree, docs/language.md; its partial results are sums of
    runs of the line, bounded by twice the output's largest magnitude). The shuffles and adds
    a scan lowers to in thread IR fix one order, which every target follows: no allowance."""
    for op in kernel.walk():
        if op.name in ("dot", "mma", "dot_pairs"):
            return True
        if op.name in ("reduce", "reduce_lanes") and op.attributes["kind"] == "sum":
            return True
        if op.name == "scan" and op.attributes["kind"] in ("sum", "prod"):
            return True
        if op.name in ("store_global", "st") and op.attributes.get("combine") == "add":
            return True
    return False


Tolerance = tuple[float, "float | np.ndarray", str]  # (rtol, atol, why)


def default_tolerance(kernel: Kernel, outputs: dict[int, npt.ArrayLike]) -> dict[int, Tolerance]:
    """(rtol, atol, why) per output, to compare a kernel's float outputs with the interpreter's
    when no companion says. `outputs`: the expected values of the written arguments, by
    argument index; each output gets its own, from its dtype and values (an f32 scale written
    beside fp8 codes is held to f32's precision, not fp8's)."""
    reordered = adds_in_any_order(kernel)
    return {
        index: output_tolerance(kernel.args[index].type.dtype, expected, reordered)
        for index, expected in outputs.items()
    }


def output_tolerance(dt: DType, expected: npt.ArrayLike, reordered: bool) -> Tolerance:
    """f32 arithmetic differs between targets by FMA contraction, each backend's own exp/log
    within an ulp or two, and where the kernel adds in an order of its own (`reordered`, see
    `adds_in_any_order`), by a few ulps of the partial sums, which are bounded by the output's
    largest magnitude times a small factor; an output of a narrower float dtype may then round
    to the neighbouring value, one unit in its last place.

    A reordered sum's rtol of 1e-4 (some 840 f32 ulps of the largest magnitude) covers sums
    of a few thousand terms (their rounding errors grow as about the square root of the count)
    and a loop of some steps that rescales what it carries (online softmax), not thousands of
    such steps: it has no term for the steps a loop ends at run time takes, so random runs
    keep those loops a few steps long (`loop_bounds`), and a companion states its own."""
    ulp = 2.0**-dt.mantissa_bits if dt.is_float else 2.0**-23
    if not reordered:
        rtol = max(1e-5, ulp)
        return rtol, 1e-6, "FMA contraction and exp/log within ulps, one rounding per output"
    magnitude = np.abs(np.asarray(expected, np.float64))
    finite = magnitude[np.isfinite(magnitude)]
    scale = float(finite.max()) if finite.size else 0.0
    rtol = max(1e-4, ulp)
    return (
        rtol,
        max(rtol * scale, 1e-6),
        f"sums in another order: within {rtol:g} of the output's largest magnitude {scale:.3g}",
    )


def _oracle_target(path: str | os.PathLike, kernel: str | None) -> str:
    """The reference interpreter, or the thread-IR interpreter for a thread-IR file."""
    if is_ir_path(path) and load_ir(path, None, kernel).kernels[0].stage == "thread":
        return "threads"
    return "interp"


def _plain(values: dict) -> dict:
    return {k: getattr(v, "name", v) for k, v in values.items()}


def _bench(
    compiled: Callable[..., None],
    pristine: list,
    companion: ModuleType | None,
    values: dict[str, int | DType],
    flops: int | None,
    accessed: int | None,
) -> None:
    """Time the kernel; its rate in bytes counts each argument's bytes once, or fewer where
    its tiles touch fewer (a gather of a few rows of a table: `accessed_bytes`). A companion's
    reference is timed too, but shown as what it is, with no ratio: it is written to check
    results exactly (gemv_wq's dequantizes the weights into float64: 300-400 ms against
    lpir's 1 ms), not to be a fast numpy peer; benchmarks/ times lpir beside peers."""
    arguments = copy.deepcopy(pristine)
    seconds = _time(lambda: compiled(*arguments))
    nbytes = _nbytes(arguments) if accessed is None else min(_nbytes(arguments), accessed)
    rate = f"  {flops / seconds / 1e9:7.1f} GFLOP/s (dots)" if flops else ""
    print(f"  lpir   {seconds * 1e3:9.3f} ms  {nbytes / seconds / 1e9:7.2f} GB/s{rate}")
    if companion is not None:
        inputs = copy.deepcopy(pristine)
        reference = _time(lambda: companion.reference(values, inputs))
        name = Path(companion.__file__ or "the companion").name
        print(
            f"  ref    {reference * 1e3:9.3f} ms  ({name}'s reference: written to check results, "
            "often in float64, not a performance peer)"
        )


__all__ = ["COMPANION_FUNCTIONS", "LpirError", "load_companion", "run_file"]
