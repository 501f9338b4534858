"""The generated CUDA C, run on the host (g++ and lpir_host.cuh), agrees with the interpreter.

No GPU is needed: `lpir.backends.cuda.emulation` compiles the emitted kernels with the host C++
compiler against a stand-in for the CUDA headers (threads are OS threads, `__syncthreads` a
barrier, `mma` a rendezvous of a warp). This checks what the backend writes — addressing,
vector accesses, masks, bit fields, casts, loops, barriers, mma fragments — while
tests/test_cuda_launch.py checks the same kernels on a real GPU where there is one.

* every example at every parameter set of `COMPILE_CASES`, against its numpy reference
  (within the example's stated tolerance; integer and packed outputs bit for bit);
* `cast` between every pair of a set of dtypes, on every code of the small types and on
  rounding midpoints, saturation and special values of the wide ones, bit for bit against
  `lpir.dtypes.convert` (NaN payloads aside);
* shared-memory races: every run checks that no two threads access a shared byte between the
  same two barriers with one of them writing (or while a `cp.async` copies into it); a kernel
  missing a `sync()` fails, and so does a staged kernel with any one of its barriers removed
  or a `cp.async` wait for too few copies.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
from dtype_references import near_ties_past_f64
from lpir.backends.cuda import emulation, precompiled_header
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.examples import COMPILE_CASES, EXAMPLES_DIRECTORY, thread_module
from lpir.backends.cuda.source import emit_kernel

import lpir
from lpir.companion import in_canonical_order
from lpir.dtypes import dtype
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program
from lpir.runner import compare, outputs_of, stated_tolerance
from lpir.runtime import cache
from lpir.runtime.specialization import run_pipeline

pytestmark = pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")

EXAMPLES = tuple(COMPILE_CASES)


def companion(name: str):
    spec = importlib.util.spec_from_file_location(
        f"cuda_example_{name}", EXAMPLES_DIRECTORY / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def runners():
    """{example: [runner per parameter set]}: one host library per example, built in parallel."""

    def build(name: str):
        kernels = [
            emit_kernel(thread_module(name, params).kernels[0], f"{name}_{index}")
            for index, params in enumerate(COMPILE_CASES[name])
        ]
        return name, emulate_kernels(kernels)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(build, EXAMPLES))


CASES = [(name, index) for name in EXAMPLES for index in range(len(COMPILE_CASES[name]))]


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{n}-{i}-" + "-".join(map(str, COMPILE_CASES[n][i].values())) for n, i in CASES],
)
def test_example_agrees_with_reference(runners, case):
    name, index = case
    params = COMPILE_CASES[name][index]
    module = companion(name)
    path = EXAMPLES_DIRECTORY / f"{name}.lp"
    values = lpir.compile(path, target="interp", **params).specialize(None).params
    arguments = module.make_inputs(values, np.random.default_rng(11))
    got = copy.deepcopy(arguments)
    runners[name][index].run(got)
    reference = module.reference(values, copy.deepcopy(arguments))
    rtol, atol, why = stated_tolerance(module, values, arguments)
    results = in_canonical_order(module, values, outputs_of(got))
    for position, wanted in reference.items():
        good, text = compare(f"{name} arg {position}", results[position], wanted, rtol, atol)
        assert good, f"{text} (tolerance: {why})"


# ---- casts ------------------------------------------------------------------------------------
CONVERT = """
kernel convert[S = f32, D = f16, N = 1024, BLOCK = 256](x: global S[N], y: global D[N])
    blocks(cdiv(N, BLOCK)) threads(64) {
    i = block.x * BLOCK
    store(y[i :+ BLOCK], cast<D>(load(x[i :+ BLOCK])))
}
"""
FLOATS = ["f32", "f16", "bf16", "f64", "f8e4m3", "f8e5m2", "f4e2m1", "f6e3m2", "f6e2m3", "f7e5m1"]
INTS = ["i8", "u8", "i4", "u3", "i16", "u16", "i32", "u32", "i64", "bool"]
PAIRS = [(s, d) for s in FLOATS for d in FLOATS + INTS if s != d]
PAIRS += [(s, d) for s in INTS for d in [*FLOATS, "i8", "u3", "i32", "u16", "bool"] if s != d]
N = 4096


def _wide_inputs(dt, rng) -> np.ndarray:
    """Values that exercise rounding: ties between small-float codes, saturation, specials."""
    ties = []
    for name in FLOATS[4:]:
        grid = np.unique(np.abs(dtype(name).decode(np.arange(1 << dtype(name).nbits))))
        grid = grid[np.isfinite(grid)].astype(np.float64)
        ties += list((grid[1:] + grid[:-1]) / 2) + list(grid)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e30, -1e30, 65504.0, 65520.0, 1e-40]
    specials += [2.0**31, -(2.0**31), 2.0**32 + 5, 3e9, -3e9, 127.5, 128.5, -128.5, 255.5]
    values = np.array(ties + [-t for t in ties] + specials, dtype=np.float64)
    rest = N - len(values)
    noise = rng.standard_normal(rest) * np.exp2(rng.integers(-30, 30, rest))
    values = np.concatenate([values, noise])[:N]
    if dt.name == "f64":
        return values
    return values.astype(dt.numpy_dtype)


def convert_inputs(source: str, rng):
    dt = dtype(source)
    if dt.nbits <= 16 and not (dt.is_float and dt.nbits == 16):
        codes = np.arange(N) % (1 << dt.nbits)
        if dt.is_packed:
            return lpir.pack_codes(codes.astype(np.uint8), dt)
        if dt.is_float:
            return (
                codes.astype(np.uint8).view(dt.ml_dtype) if dt.ml_dtype else codes.astype(np.uint8)
            )
        return dt.from_codes(codes.astype(dt.code_numpy_dtype))
    if dt.is_float and dt.nbits == 16:
        return rng.integers(0, 1 << 16, N).astype(np.uint16).view(dt.numpy_dtype)
    if dt.is_float:
        return _wide_inputs(dt, rng)
    info = np.iinfo(dt.numpy_dtype)
    edges = [info.min, info.max, 0, 1, -1 if dt.kind == "int" else 2]
    edges = np.array(edges + near_ties_past_f64(dt.nbits, dt.is_signed), dtype=dt.numpy_dtype)
    body = rng.integers(info.min, info.max, N - len(edges), dtype=dt.numpy_dtype, endpoint=True)
    small = rng.integers(-300 if dt.kind == "int" else 0, 300, N // 4).astype(dt.numpy_dtype)
    return np.concatenate([edges, small, body])[:N]


def empty_output(target: str):
    dt = dtype(target)
    if dt.is_packed:
        return lpir.pack_codes(np.zeros(N, np.uint8), dt)
    if dt.is_float and dt.nbits == 8:
        return np.zeros(N, np.uint8).view(dt.ml_dtype) if dt.ml_dtype else np.zeros(N, np.uint8)
    return np.zeros(N, dt.numpy_dtype)


def _codes(value, dt) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.asarray(dt.to_codes(value.view(np.uint8) if dt.is_small_float else value))
    return value.codes()


@pytest.fixture(scope="module")
def converters():
    program = parse_program(CONVERT, "<convert>")
    kernels = []
    for index, (source, target) in enumerate(PAIRS):
        _, module = specialize(program, None, {"S": source, "D": target, "N": N})
        final = run_pipeline(module, "cuda", {}, verify=False)
        kernels.append(emit_kernel(final.kernels[0], f"convert_{index}"))
    return dict(zip(PAIRS, emulate_kernels(kernels)))


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_cast_is_bit_exact(converters, pair):
    source, target = pair
    rng = np.random.default_rng(5)
    x = convert_inputs(source, rng)
    expected, got = empty_output(target), empty_output(target)
    lpir.compile(CONVERT, target="interp", S=source, D=target, N=N)(x, expected)
    converters[pair].run([x, got])
    dt = dtype(target)
    mine, theirs = _codes(got, dt), _codes(expected, dt)
    if dt.is_float and not dt.is_small_float:
        values_mine = dt.decode(mine)
        values_theirs = dt.decode(theirs)
        nan = np.isnan(values_theirs)
        np.testing.assert_array_equal(np.isnan(values_mine), nan)
        mine, theirs = mine[~nan], theirs[~nan]
    bad = np.flatnonzero(mine != theirs)
    inputs = np.asarray(_codes(x, dtype(source)) if not isinstance(x, np.ndarray) else x)
    assert bad.size == 0, (
        f"{bad.size} of {mine.size} differ; first inputs {inputs.reshape(-1)[bad[:5]]}: "
        f"got {mine[bad[:5]]}, expected {theirs[bad[:5]]}"
    )


def test_a_misaligned_vector_access_fails_like_on_a_gpu():
    """The host tolerates a 16-byte access off a 16-byte boundary; a GPU faults, and so does
    the emulation: here vector_add's first load of x moved by one float."""
    from lpir.backends.cuda.examples import thread_module

    emitted = emit_kernel(thread_module("vector_add", {"N": 1024}).kernels[0], "misaligned")
    aligned = "lpir_load<16, true>(v5, x_at_0);"
    assert aligned in emitted.text
    x, y = np.ones(1024, np.float32), np.ones(1024, np.float32)
    (runner,) = emulate_kernels([emitted])
    runner.run([x, y, np.zeros(1024, np.float32)])  # as emitted: aligned
    emitted.text = emitted.text.replace(aligned, "lpir_load<16, true>(v5, x_at_0 + 1);")
    (runner,) = emulate_kernels([emitted])
    with pytest.raises(
        lpir.LpirError, match="misaligned address: kernel vector_add made a 16-byte"
    ):
        runner.run([x, y, np.zeros(1024, np.float32)])


# 96 KB of shared memory (two 128 x 96 f32 tiles): past the static 48 KB, so the kernel
# declares it dynamic (`LPIR_DYNAMIC_SHARED`) and the launch asks for it
BIG_SHARED = """
kernel big_shared[M = 200, N = 300](a: global f32[M, N], b: global f32[N, M])
    blocks(cdiv(N, 96), cdiv(M, 128)) threads(256) {
    t = shared<f32>[128, 96]
    u = shared<f32>[96, 128]
    store(t, load(a[block.y * 128 :+ 128, block.x * 96 :+ 96]))
    sync()
    store(u, transpose(load(t)) * 2.0)
    sync()
    store(b[block.x * 96 :+ 96, block.y * 128 :+ 128], load(u))
    store(a[block.y * 128 :+ 128, block.x * 96 :+ 96], load(t))  # t and u live at once
}
"""


def test_a_kernel_with_dynamic_shared_memory_runs_on_the_emulation():
    """Over 48 KB of shared memory is dynamic on a GPU; the emulation gives the kernel a
    static array of the size it declares."""
    kernel = lpir.compile(BIG_SHARED, target="cuda").specialize(None).module.kernels[0]
    emitted = emit_kernel(kernel, "big_shared")
    assert emitted.dynamic_shared_bytes == 2 * 128 * 96 * 4
    assert "LPIR_DYNAMIC_SHARED(lpir_shared, 98304);" in emitted.text
    a = np.random.default_rng(2).standard_normal((200, 300)).astype(np.float32)
    (runner,) = emulate_kernels([emitted])
    got = [a, np.zeros((300, 200), np.float32)]
    runner.run(got)
    np.testing.assert_array_equal(got[1], 2 * a.T)  # exact: a copy and a doubling


RACY = """
kernel racy[SYNC = 0](x: global f32[128], y: global f32[128]) blocks(1) threads(128) {
    t = shared<f32>[128]
    store(t, load(x[0 :+ 128]) @ spatial(128))
    if SYNC == 1 {
        sync()
    }
    store(y[0 :+ 128], load(t) @ local(128).replicate(128))   # every thread reads all of t
}
"""


@pytest.mark.parametrize("sync", [0, 1])
def test_a_missing_barrier_is_a_shared_memory_race(sync):
    """Each thread reads all of t, which the others wrote: the compiler puts a barrier
    between (insert-syncs) where the kernel has no sync(). Without it in the generated code,
    each thread may read t before the others wrote it: on a GPU the result would depend on
    timing; the emulation reports the race, whatever values it saw."""
    kernel = lpir.compile(RACY, target="cuda", SYNC=sync).specialize(None).module.kernels[0]
    emitted = emit_kernel(kernel, f"racy_{sync}")
    x, y = np.arange(128, dtype=np.float32), np.zeros(128, np.float32)
    (runner,) = emulate_kernels([emitted])
    runner.run([x, y])
    np.testing.assert_array_equal(y, x)
    assert emitted.text.count("__syncthreads();") == 1
    emitted.text = emitted.text.replace("__syncthreads();", "")
    (runner,) = emulate_kernels([emitted])
    # (a thread that reads before any other has written sees uninitialized memory)
    with pytest.raises(lpir.LpirError, match=r"shared-memory race|uninitialized shared memory"):
        runner.run([x, y])


STAGED = [
    ("matmul_wq", {"M": 64, "N": 64, "K": 256, "STAGES": 3}),
    ("skinny_wq", {"M": 64, "N": 128, "K": 512, "MB": 64, "BK": 64, "XS": 1, "STAGES": 3}),
]


def _staged_runner(name: str, params: dict, edit):
    from lpir.runner import random_argument

    kernel = thread_module(name, params).kernels[0]
    emitted = emit_kernel(kernel, name)
    emitted.text = edit(emitted.text)
    rng = np.random.default_rng(0)
    arguments = [random_argument(arg.type, rng) for arg in kernel.args]
    (runner,) = emulate_kernels([emitted])
    return runner, arguments


@pytest.mark.parametrize(("name", "params"), STAGED, ids=[name for name, _ in STAGED])
def test_every_barrier_of_a_staged_loop_is_needed(name, params):
    """Tiles copied by cp.async into rings of shared buffers (staging.py) rely on the program's
    barriers: with any one of them removed, some thread reads a buffer another is still
    writing, or refills one another still reads."""
    barrier = "__syncthreads();"
    text = emit_kernel(thread_module(name, params).kernels[0], name).text
    places = [index for index in range(len(text)) if text.startswith(barrier, index)]
    assert len(places) >= 2
    runner, arguments = _staged_runner(name, params, lambda text: text)
    runner.run(copy.deepcopy(arguments))  # as emitted: no race
    for place in places:
        runner, _ = _staged_runner(
            name, params, lambda text, at=place: text[:at] + text[at + len(barrier) :]
        )
        with pytest.raises(lpir.LpirError, match=r"shared-memory race|uninitialized shared"):
            runner.run(copy.deepcopy(arguments))


def test_waiting_for_too_few_copies_is_a_race():
    """`lpir_cp_async_wait<N>` leaves the N latest groups in flight; one more, and threads read
    a buffer that another thread's copy has not yet landed in."""
    name, params = STAGED[0]
    wait = "lpir_cp_async_wait<1>();"
    runner, arguments = _staged_runner(
        name, params, lambda text: text.replace(wait, "lpir_cp_async_wait<2>();")
    )
    with pytest.raises(lpir.LpirError, match="shared-memory race"):
        runner.run(arguments)


def test_the_cuda_host_target_runs_the_gpu_code_on_the_cpu():
    """`target="cuda-host"`: the kernel's CUDA C on the host, called like any other target."""
    params = {"N": 200, "K": 512, "BN": 64}
    kernel = lpir.compile(EXAMPLES_DIRECTORY / "gemv_tc.lp", target="cuda-host", **params)
    assert "mma" in kernel.source("cuda")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(512).astype(np.float16)
    w = lpir.pack(rng.integers(0, 16, (200, 512)), "u4")
    s = rng.random((200, 4)).astype(np.float32)
    got, wanted = np.zeros(200, np.float32), np.zeros(200, np.float32)
    kernel(x, w, s, got)
    lpir.compile(EXAMPLES_DIRECTORY / "gemv_tc.lp", target="interp", **params)(x, w, s, wanted)
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-4)  # f32 sums, another order


def test_the_cuda_host_target_reports_a_race_as_an_error(capsys, monkeypatch):
    from lpir.passes import PIPELINES

    from lpir.cli import main

    x, y = np.arange(128, dtype=np.float32), np.zeros(128, np.float32)
    # the CUDA pipeline without insert-syncs: the kernel misses the barrier it needs, as
    # generated code with a barrier missing would
    without = tuple(name for name in PIPELINES["cuda"] if name != "insert-syncs")
    with monkeypatch.context() as patch:
        patch.setitem(PIPELINES, "cuda", without)
        with pytest.raises(lpir.LpirError, match=r"shared-memory race|uninitialized shared"):
            lpir.compile(RACY, target="cuda-host")(x, y)
    lpir.compile(RACY, target="cuda-host")(x, y)
    np.testing.assert_array_equal(y, x)
    lpir.compile(RACY, target="cuda-host", SYNC=1)(x, y)
    np.testing.assert_array_equal(y, x)
    assert (
        main(
            [
                "run",
                str(EXAMPLES_DIRECTORY / "vector_add.lp"),
                "--target",
                "cuda-host",
                "--check",
                "-D",
                "N=1000",
            ]
        )
        == 0
    )
    assert "ok    arg 2 vs interpreter" in capsys.readouterr().out


def test_reading_shared_memory_nobody_wrote_is_an_error():
    """On a GPU a shared tile starts with what the previous block left there."""
    source = """
    kernel unwritten[](y: global f32[128]) blocks(2) threads(128) {
        t = shared<f32>[128]
        store(y[0 :+ 128], load(t))
    }
    """
    with pytest.raises(lpir.LpirError, match="uninitialized shared memory in block"):
        lpir.compile(source, target="cuda-host")(np.zeros(128, np.float32))


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_a_damaged_emulation_library_is_built_again(tmp_path):
    """The built libraries live in lpir's cache directory; one cut short (a full disk, a
    killed copy) raised "file too short" for good instead of being built again, and one cut
    in half killed the process with SIGBUS when the loader mapped it (found by an explorer).
    Entries carry a checksum now: damaged ones are built again. (Processes of their own: a
    library this process has loaded stays mapped.)"""
    import os
    import subprocess
    import sys

    environment = {**os.environ, "LPIR_CACHE_DIR": str(tmp_path)}
    path = str(EXAMPLES_DIRECTORY / "vector_add.lp")
    command = [sys.executable, "-m", "lpir", "run", path, "--target", "cuda-host", "-D", "N=300"]
    subprocess.run(command, env=environment, check=True, capture_output=True)
    (library,) = (tmp_path / "emulation").glob("*/*.bin")
    whole = library.read_bytes()
    for damage in (b"", whole[: len(whole) // 2], whole[:-1] + bytes([whole[-1] ^ 1])):
        library.write_bytes(damage)
        result = subprocess.run(
            [*command, "--check"], env=environment, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0 and "ok    arg 2" in result.stdout, result.stderr
        assert library.stat().st_size == len(whole)


def test_a_wide_integer_row_max_runs():
    """The 999 integer maxes of a thread's 1000-wide row (tests/test_cuda_emit.py: a call
    each, so the C stays small) give numpy's max and first position of it."""
    from test_cuda_emit import WIDE_ROW_MAX

    rng = np.random.default_rng(7)
    x = rng.integers(-50, 50, (5, 1000), dtype=np.int32)  # many ties: the first one counts
    best, at = np.zeros(5, np.int32), np.zeros(5, np.int32)
    lpir.compile(WIDE_ROW_MAX, target="cuda-host")(x, best, at)
    assert np.array_equal(best, x.max(axis=1)) and np.array_equal(at, x.argmax(axis=1))


RACE_SCRIPT = """
import sys
import numpy as np
import lpir
constant = float(sys.argv[2])
source = open(sys.argv[1]).read().replace(
    "load(x[i :+ BLOCK]) + load(y", f"load(x[i :+ BLOCK]) + {constant} + load(y"
)
kernel = lpir.compile(source, target="cuda-host", N=256, BLOCK=256)
x, y, z = np.zeros(256, np.float32), np.zeros(256, np.float32), np.zeros(256, np.float32)
kernel(x, y, z)
assert (z == np.float32(constant)).all(), z[:4]
print("ok")
"""


def test_processes_building_one_new_kernel_at_once_all_succeed(tmp_path):
    """Each build writes a source and a library of its own: processes building the same new
    kernel into one cache folder read each other's half-written source and died of a library
    without lpir_emulation_misaligned."""
    environment = {**os.environ, "LPIR_CACHE_DIR": str(tmp_path)}
    constant = f"{uuid.uuid4().int % 10**6}.0"
    command = [sys.executable, "-c", RACE_SCRIPT, str(EXAMPLES_DIRECTORY / "vector_add.lp")]
    processes = [
        subprocess.Popen(
            [*command, constant], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.decode().strip() == "ok", err.decode()[-2000:]
    leftovers = [path.name for path in (tmp_path / "emulation").iterdir() if path.name[0] == "."]
    assert leftovers == []


def unique_library_source() -> tuple[str, str, int]:
    """C++ of one exported function no other build made: (source, its name, what it returns)."""
    number = uuid.uuid4().int % 10**9
    name = f"lpir_test_{number}"
    return f'extern "C" int {name}() {{ return {number % 1000}; }}\n', name, number % 1000


def test_threads_building_one_new_library_at_once_all_succeed(tmp_path, monkeypatch):
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    source, symbol, value = unique_library_source()
    with ThreadPoolExecutor(max_workers=4) as pool:
        libraries = list(pool.map(lambda _: emulation.build(source, [symbol]), range(4)))
    assert all(getattr(library, symbol)() == value for library in libraries)


def test_a_library_without_the_expected_functions_is_built_again(tmp_path, monkeypatch):
    """A library that loads but lacks what its source defines (built from a cut-short source)
    is damaged: built again, also in a process that has loaded it."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    source, symbol, value = unique_library_source()
    assert getattr(emulation.build(source, [symbol]), symbol)() == value
    (library,) = (tmp_path / "emulation").glob("*/*.bin")
    other = tmp_path / "other.cpp"
    other.write_text('extern "C" int lpir_something_else() { return 0; }\n')
    damaged = tmp_path / "damaged.so"
    command = [*emulation.host_compiler(), "-shared", "-fPIC", str(other), "-o", str(damaged)]
    subprocess.run(command, check=True)
    cache.write_entry(library, damaged.read_bytes())  # a sound entry of the wrong library
    assert emulation._open(damaged.read_bytes(), []) is not None  # this process loads it
    monkeypatch.setattr(emulation, "_libraries", {})
    assert getattr(emulation.build(source, [symbol]), symbol)() == value
    assert symbol.encode() in library.read_bytes()  # the damaged one replaced


def test_a_half_written_shared_source_does_not_reach_the_compiler(tmp_path, monkeypatch):
    """Another process writing the kernel's source beside its library (`<key>.cpp`) is half
    done when this build's compiler starts: the build compiles a source of its own."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    last, symbol, value = unique_library_source()
    source = "".join(f'extern "C" int {symbol}_{i}() {{ return {i}; }}\n' for i in range(50))
    source += last  # what half the source lacks
    emulation.build(source, [symbol])
    (library,) = (tmp_path / "emulation").glob("*/*.bin")
    library.unlink()
    (shared_source,) = (tmp_path / "emulation").glob("*.cpp")

    def compile_while_another_writes(command, **options):
        shared_source.write_text(source[: len(source) // 2])
        return subprocess.run(command, **options)

    monkeypatch.setattr(emulation, "subprocess", SimpleNamespace(run=compile_while_another_writes))
    monkeypatch.setattr(emulation, "_libraries", {})
    assert getattr(emulation.build(source, [symbol]), symbol)() == value


def test_a_full_cache_folder_loads_the_library_from_the_temporary_one(tmp_path, monkeypatch):
    """Where the cache folder's disk was full, the private copy of a library failed to write
    and the kernel was reported as built into a library that does not load (found by an
    explorer): the copy is made in the temporary folder instead."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    source, symbol, value = unique_library_source()
    make_temporary = emulation.tempfile.mkstemp

    def full_cache_folder(*args, **options):
        """A file made in the cache folder takes no bytes (opened read-only: writes fail)."""
        handle, name = make_temporary(*args, **options)
        if options.get("dir") is None:
            return handle, name
        os.close(handle)
        return os.open(name, os.O_RDONLY), name

    monkeypatch.setattr(emulation.tempfile, "mkstemp", full_cache_folder)
    assert getattr(emulation.build(source, [symbol]), symbol)() == value
    assert not list((tmp_path / "emulation").glob(".lpir-*"))  # the failed copy removed


@pytest.mark.parametrize(
    "cxx, message",
    [
        ("/no/such/compiler", "CXX is '/no/such/compiler', and '/no/such/compiler' is not"),
        ("true", "exited without error but wrote no library"),
    ],
)
def test_a_cxx_that_builds_nothing_is_a_clear_error(cxx, message, tmp_path, monkeypatch):
    """CXX naming no command was passed over for g++ without a word, and a CXX that wrote
    nothing raised FileNotFoundError (found by an explorer)."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", cxx)
    source, symbol, _ = unique_library_source()
    with pytest.raises(lpir.LpirError, match=message.replace("(", r"\(")) as caught:
        emulation.build(source, [symbol])
    assert "set CXX to a C++20 compiler" in caught.value.hint


def test_cxx_may_be_a_command_with_words(tmp_path, monkeypatch):
    """`CXX="ccache g++"` was ignored (the whole string looked up as one command)."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", f"env LPIR_UNUSED=1 {emulation.host_compiler()[0]}")
    source, symbol, value = unique_library_source()
    assert emulation.host_compiler()[:2] == (emulation.shutil.which("env"), "LPIR_UNUSED=1")
    assert getattr(emulation.build(source, [symbol]), symbol)() == value


def _precompiled_folder():
    compiler = emulation.host_compiler()
    version = emulation._compiler_version(compiler)
    return emulation.precompiled_header_folder(
        compiler, version, emulation._HEADER_FLAGS, emulation._source_directory()
    )


def test_the_helper_headers_are_precompiled_once_per_cache(tmp_path, monkeypatch):
    """g++ spent about 0.8 s of a small kernel's 1.3 s on the headers: they are compiled once
    into the cache (GCC only) and every build reads them from there."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precompiled_header, "_folders", {})
    folder = _precompiled_folder()
    if folder is None:
        pytest.skip("the host compiler is not GCC")
    gch = folder / "lpir_cuda.cuh.gch"
    assert gch.stat().st_size > 0 and folder.parent == tmp_path / "emulation"
    written = gch.stat().st_mtime_ns
    kernel = lpir.compile(EXAMPLES_DIRECTORY / "vector_add.lp", target="cuda-host", N=300)
    x = np.arange(300, dtype=np.float32)
    z = np.zeros_like(x)
    kernel(x, x, z)
    np.testing.assert_array_equal(z, 2 * x)
    assert gch.stat().st_mtime_ns == written  # used, not built again


def test_a_damaged_precompiled_header_is_read_past(tmp_path, monkeypatch):
    """GCC reads the header itself where the precompiled one is not valid, and a build that
    fails with it is tried once without it."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precompiled_header, "_folders", {})
    folder = _precompiled_folder()
    if folder is None:
        pytest.skip("the host compiler is not GCC")
    (folder / "lpir_cuda.cuh.gch").write_bytes(b"gpch" + os.urandom(4000))
    source, symbol, value = unique_library_source()
    source = '#include "lpir_cuda.cuh"\n' + source
    assert getattr(emulation.build(source, [symbol]), symbol)() == value
