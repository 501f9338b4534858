"""CPU sorts compile in reasonable time: the bitonic network runs in registers of
`CPU_SORT_REGISTER_LANES` lanes, orders a pair by one comparison of packed i64 keys (32-bit
keys and narrower; 64-bit keys compare key and position apart), and a thread's sort past
`CPU_LANE_STEPS` is a located error naming the threads that fit. The results are the
interpreter's, bit for bit (`passes/thread_sorts.py`)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from lpir.backends.llvm import jit, llvm_module

import lpir
from lpir.errors import LpirError
from lpir.ir.parser import parse

SORT = """
kernel k[T = f32, N = 256, DOWN = 0](x: global T[N], y: global T[N], p: global i32[N])
    blocks(1) threads(THREADS) {
    t = load(x[:])
    store(y[:], sort(t, descending = DOWN != 0))
    store(p[:], argsort(t, descending = DOWN != 0))
}
"""

NUMPY = {
    "f32": np.float32,
    "f16": np.float16,
    "f64": np.float64,
    "i32": np.int32,
    "u32": np.uint32,
    "i64": np.int64,
    "u8": np.uint8,
}


def _keys(dt: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Keys with many ties and each dtype's edge values: -0.0, 0.0, infinities, NaNs of
    either sign and other payloads, subnormals, the extreme integers."""
    kind = NUMPY[dt]
    if np.issubdtype(kind, np.integer):
        info = np.iinfo(kind)
        edges = np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1], dtype=kind)
        x = rng.integers(-3, 4, size=n).astype(kind)
    else:
        info = np.finfo(kind)
        edges = np.array(
            [-0.0, 0.0, np.inf, -np.inf, np.nan, -np.nan, info.max, -info.max, info.tiny / 4],
            dtype=kind,
        )
        x = rng.integers(-3, 4, size=n).astype(kind) / 2
    positions = rng.choice(n, size=4 * len(edges), replace=False)
    x[positions] = np.tile(edges, 4)
    if dt == "f32":  # a NaN with a payload of its own, and a negative one
        bits = x.view(np.uint32)
        bits[positions[:2]] = [0x7FC01234, 0xFFA00001]
    return x


def _limits():
    """passes.thread_sorts, imported once lpir is (the passes import each other)."""
    from lpir.passes import thread_sorts

    return thread_sorts


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}")


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dt", ["f32", "f16", "i32", "u32", "u8", "f64", "i64"])
def test_cpu_sorts_match_the_interpreter_bit_for_bit(dt, descending, threads):
    """256 elements: 4 registers a thread (threads(1)), or runs of 64 over 4 threads
    exchanging through shared memory; keys packed with their positions (32 bits and
    narrower) or compared apart (64 bits)."""
    x = _keys(dt, 256, np.random.default_rng(7))
    source = SORT.replace("THREADS", str(threads))
    results = {}
    for target in ("interp", "cpu"):
        y, p = np.zeros_like(x), np.zeros(len(x), np.int32)
        lpir.compile(source, target=target, T=dt, DOWN=int(descending))(x, y, p)
        results[target] = (y, p)
    assert np.array_equal(_bits(results["cpu"][0]), _bits(results["interp"][0]))
    assert np.array_equal(results["cpu"][1], results["interp"][1])
    if dt in ("i32", "u32", "i64", "u8"):  # numpy's stable order, for the integers
        wanted = np.argsort(x, kind="stable")
        if descending:  # stable: equal keys keep their order
            wanted = len(x) - 1 - np.argsort(x[::-1], kind="stable")[::-1]
        assert np.array_equal(results["cpu"][1], wanted)


def test_a_thread_sorts_in_registers_of_64_lanes_one_comparison_a_pair():
    """A thread's sort of 1024 f32 compares and selects registers of 64 lanes, never the
    whole vector (1024-lane steps were 15 s of LLVM's code generation), and orders a pair
    by one i64 comparison."""
    thread_sorts = _limits()
    kernel = lpir.compile(SORT.replace("THREADS", "1"), target="cpu", N=1024)
    final = kernel.ir("final")
    selects = [int(n) for n in re.findall(r"= where\(.*\) : <(\d+) x \w+>", final)]
    wide = [n for n in selects if n != thread_sorts.CPU_SORT_REGISTER_LANES]
    assert len(selects) > 1000 and len(wide) <= 4, wide  # (the keys packed before the network)
    comparisons = re.findall(r"= lt\(.*\) : <\d+ x bool>", final)
    steps = 10 * 11 // 2
    registers = 1024 // thread_sorts.CPU_SORT_REGISTER_LANES
    # two networks (sort and argsort); a step across registers compares each pair once
    assert len(comparisons) <= 2 * steps * registers


def _sort_llvm(dt: str, threads: int, n: int) -> str:
    """The unoptimized LLVM IR of SORT's thread IR (the CPU's pipeline; no code generated)."""
    kernel = lpir.compile(SORT.replace("THREADS", str(threads)), target="threads", T=dt, N=n)
    return str(llvm_module(parse(kernel.ir("final"))))


@pytest.mark.parametrize("dt, threads", [("f32", 1), ("u8", 1), ("i32", 2)])
def test_packed_keys_select_by_the_comparison_itself(dt, threads):
    """Which of a pair a lane keeps (its own where it comes first, unless it keeps the later)
    is one i64 comparison of the packed keys, xor-ed with the lane's direction as i64, not
    the comparison's bool lanes xor-ed: i1 vector logic between a comparison and the selects
    is computed in bytes by x86 without AVX-512 (the masks packed down and widened back for
    every select), which made a thread's sort of 1024 f32 two minutes of AVX2 code generation
    (20 s on AVX-512). threads(2): the direction's bit of the chunk, known at run time."""
    optimized = jit.optimized_text(_sort_llvm(dt, threads, 64 * threads))
    selects = re.findall(r"= select <64 x i1>", optimized)
    logic = re.findall(r"= (?:and|or|xor) <\d+ x i1>", optimized)
    assert len(selects) >= 2 * 21 and not logic, logic[:4]


def test_avx2_code_of_a_sort_keeps_its_masks_wide():
    """A sort of 64 f32 in a thread compiled for AVX2 without AVX-512 (any x86 host can
    compile it) widens no byte masks for its selects: no vpmovzxbd / vpmovsxbd, no packing
    of masks into bytes (vpacksswb). With the bool xor of `later` it had 160 vpmovzxbd, 41
    vpacksswb and 4800 instructions in all (3100 without)."""
    if not jit.host()[0].startswith(("x86_64", "i686", "i386")):
        pytest.skip("x86 code generation")
    text = _sort_llvm("f32", 1, 64)
    triple, cpu, features = jit.host()
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx10.1", "avx10.2"}
    kept = [f for f in features.split(",") if f and f[1:] not in avx512 | {"avx2", "avx"}]
    chosen = ["+avx", "+avx2", *(f"-{f}" for f in sorted(avx512))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jit, "host", lambda: (triple, cpu, ",".join(kept + chosen)))
        assembly = jit.assembly(text)
    instructions = [line.split()[0] for line in assembly.splitlines() if line.startswith("\t")]
    assert "vpcmpgtq" in instructions and "zmm" not in assembly  # (AVX2's i64 comparisons)
    widened = [i for i in instructions if re.fullmatch(r"vpmov[sz]xb[wdq]|vpacksswb", i)]
    assert not widened, sorted(set(widened))


def test_a_cpu_sort_past_the_lane_steps_is_a_located_error():
    """2048 elements a thread, 66 steps: past CPU_LANE_STEPS; the hint names the threads
    that bring it within."""
    source = "\n".join(
        [
            "kernel k(x: global f32[2048], y: global f32[2048]) blocks(1) threads(1) {",
            "    store(y[:], sort(load(x[:])))",
            "}",
        ]
    )
    thread_sorts = _limits()
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":2:17:" in text and "^" in text, text
    assert f"{2048 * 66} compare-exchanges" in text and str(thread_sorts.CPU_LANE_STEPS) in text, (
        text
    )
    assert "threads(2)" in text, text


def test_a_slow_llvm_compile_names_the_size_not_an_llvm_bug(monkeypatch, capsys):
    """Past jit.SLOW_COMPILE_S the message says how large the LLVM IR is (a huge unrolled
    kernel is the usual cause), not that LLVM loops forever."""
    from lpir.backends.llvm import jit

    optimized_module = jit.optimized_module

    def slowly(text: str):
        import time

        time.sleep(0.5)
        return optimized_module(text)

    monkeypatch.setattr(jit, "optimized_module", slowly)
    monkeypatch.setattr(jit, "SLOW_COMPILE_S", 0.05)
    x = np.arange(256, dtype=np.float32)
    y, p = np.zeros_like(x), np.zeros(256, np.int32)
    lpir.compile(SORT.replace("THREADS", "2"), target="cpu", N=256)(x, y, p)
    assert np.array_equal(y, x)
    error = capsys.readouterr().err
    assert "LLVM instructions before optimization, vectors of up to <" in error, error
    assert "loops forever" not in error and "more threads" in error, error
