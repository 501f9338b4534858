"""The CPU's integer dot two steps of k at a time (backends/llvm/integer_pairs.py).

Two steps `acc + a0 b0`, `+ a1 b1` of i32 lanes whose factors are narrow integers are one
`pmaddwd` (`vpdpwssd` with AVX512-VNNI) of the i16 pairs (a0, a1) and (b0, b1). The results
are the interpreter's bits: i8 x i8 matmuls at shapes that do not divide the tiles, the
extremes -128 and 127 included, and thread IR of every kind of factor (i8, u8, i16 with the
one pair whose sum passes i32, a splatted scalar) at lane counts that take every instruction
width and the i32 multiply for the lanes left over, on this host and with AVX512BW, AVX2 and
SSE2 hidden one after another (as on CPUs without them).
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import jit

import lpir

FEATURES = set(jit.host()[2].split(","))
HAS_AVX512BW = "+avx512bw" in FEATURES
# (host features left, the intrinsic the accumulator's widest lanes take)
HOSTS = [
    ("all", "llvm.x86.avx512.pmaddw.d.512"),
    ("no avx512bw", "llvm.x86.avx2.pmadd.wd"),
    ("no avx2", "llvm.x86.sse2.pmadd.wd"),
    ("no sse2", None),
]
HIDDEN = {
    "all": (),
    "no avx512bw": ("+avx512bw",),
    "no avx2": ("+avx512bw", "+avx2"),
    "no sse2": ("+avx512bw", "+avx2", "+sse2"),
}

GEMM = """
kernel int8_gemm[M = 100, N = 70, K = 200, BM = 32, BN = 32, BK = 32, THREADS = 128](
    a: global i8[M, K],
    b: global i8[K, N],
    c: global i32[M, N],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(THREADS) {
    rows = block.x * BM
    cols = block.y * BN
    acc = zeros<i32>[BM, BN]
    for k0 in range(0, K, BK) {
        at = load(a[rows :+ BM, k0 :+ BK])
        bt = load(b[k0 :+ BK, cols :+ BN])
        acc = dot(at, bt, acc)
    }
    store(c[rows :+ BM, cols :+ BN], acc)
}
"""


def _hide(monkeypatch, host: str) -> None:
    """Compile as on a CPU without the features `host` names (the cache key sees it too)."""
    triple, cpu, features = jit.host()
    hidden = HIDDEN[host]
    kept = [f for f in features.split(",") if f and f not in hidden]
    disabled = [f"-{f[1:]}" for f in hidden]
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, ",".join(kept + disabled)))


def _pretend(monkeypatch, host: str) -> None:
    """Compile as on a CPU with the instruction sets of HIDDEN's "all" but those `host` hides,
    whatever this machine has (an AVX2 host compiles AVX-512 code it could not run)."""
    triple, cpu, features = jit.host()
    named = set(HIDDEN["no sse2"])
    kept = [f for f in features.split(",") if f and f[1:] not in {n[1:] for n in named}]
    chosen = [f"-{f[1:]}" if f in HIDDEN[host] else f for f in sorted(named)]
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, ",".join(kept + chosen)))


def _with_extremes(rng, shape) -> np.ndarray:
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    x[0, :] = -128
    x[-1, :] = 127
    x[:, 0] = -128
    x[:, -1] = 127
    x[1::7, 1::5] = -128
    return x


def _gemm(tmp_path, target: str, a, b, **params) -> np.ndarray:
    path = tmp_path / "int8_gemm.lp"
    path.write_text(GEMM)
    m, k = a.shape
    n = b.shape[1]
    c = np.zeros((m, n), np.int32)
    lpir.compile(path, target=target, M=m, N=n, K=k, **params)(a, b, c)
    return c


@pytest.mark.parametrize(
    "shape, tile",
    [
        ((100, 70, 200), dict(BM=32, BN=32, BK=32)),
        ((37, 45, 71), dict(BM=32, BN=32, BK=32)),
        ((65, 130, 97), dict(BM=64, BN=64, BK=32)),
        ((20, 150, 130), dict(BM=64, BN=128, BK=64)),
        ((9, 17, 3), dict(BM=16, BN=16, BK=16, THREADS=32)),
    ],
)
def test_i8_matmul_is_exact_on_the_cpu(tmp_path, shape, tile):
    m, n, k = shape
    rng = np.random.default_rng(m * n * k)
    a, b = _with_extremes(rng, (m, k)), _with_extremes(rng, (k, n))
    expected = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    assert np.array_equal(_gemm(tmp_path, "interp", a, b, **tile), expected)
    assert np.array_equal(_gemm(tmp_path, "cpu", a, b, **tile), expected)


@pytest.mark.parametrize("host", list(HIDDEN))
def test_i8_matmul_is_exact_without_each_instruction(tmp_path, monkeypatch, host):
    _hide(monkeypatch, host)
    rng = np.random.default_rng(1)
    a, b = _with_extremes(rng, (70, 90)), _with_extremes(rng, (90, 50))
    expected = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    assert np.array_equal(_gemm(tmp_path, "cpu", a, b, BM=64, BN=64, BK=32), expected)


@pytest.mark.skipif(not HAS_AVX512BW, reason="the host has no AVX512BW")
def test_the_i8_matmul_multiplies_pairs_not_i32_lanes(tmp_path):
    path = tmp_path / "int8_gemm.lp"
    path.write_text(GEMM)
    kernel = lpir.compile(path, target="cpu", M=256, N=256, K=256, BM=64, BN=64, BK=32)
    assembly = kernel.source("asm")
    assert "vpmulld" not in assembly
    # pairs multiplied and added: vpdpwssd with VNNI, or vpmaddwd (and an add), which LLVM
    # picks for most of them on some VNNI hosts too (Intel Emerald Rapids: 30 of 32)
    pairs = assembly.count("vpmaddwd")
    if "+avx512vnni" in FEATURES:
        pairs += assembly.count("vpdpwssd")
    assert pairs >= 16  # 2 a pair of steps, 16 steps of BK = 32


# ---- thread IR: every kind of factor and lane count ---------------------------------------------
def _steps_kernel(lanes: int, steps: int, a_type: str, b_type: str, splat_a: bool) -> str:
    """c[0:lanes] (i32) += sum over s < steps of cast<i32>(a_s) * cast<i32>(b_s), where a_s is
    a[s * lanes :+ lanes] (or a[s] splatted) and b_s is b[s * lanes :+ lanes]."""

    def offsets(start: int) -> str:
        return ", ".join(str(start + i) for i in range(lanes))

    a_size = steps if splat_a else steps * lanes
    lines = ["  %z = constant {value = 0} : i32"]
    lines.append(f"  %acc0 = ld(%c, %z) {{offsets = [{offsets(0)}]}} : <{lanes} x i32>")
    for s in range(steps):
        if splat_a:
            lines.append(f"  %al{s} = ld(%a, %z) {{offsets = [{s}]}} : <1 x {a_type}>")
            lines.append(f"  %as{s} = extract(%al{s}) {{index = 0}} : {a_type}")
            lines.append(f"  %aw{s} = cast(%as{s}) : i32")
            lines.append(f"  %a{s} = splat(%aw{s}) {{shape = [{lanes}]}} : <{lanes} x i32>")
        else:
            lines.append(
                f"  %an{s} = ld(%a, %z) {{offsets = [{offsets(s * lanes)}]}} : <{lanes} x {a_type}>"
            )
            lines.append(f"  %a{s} = cast(%an{s}) : <{lanes} x i32>")
        lines.append(
            f"  %bn{s} = ld(%b, %z) {{offsets = [{offsets(s * lanes)}]}} : <{lanes} x {b_type}>"
        )
        lines.append(f"  %b{s} = cast(%bn{s}) : <{lanes} x i32>")
        lines.append(f"  %p{s} = mul(%a{s}, %b{s}) : <{lanes} x i32>")
        lines.append(f"  %acc{s + 1} = add(%acc{s}, %p{s}) : <{lanes} x i32>")
    lines.append(f"  st(%c, %z, %acc{steps}) {{offsets = [{offsets(0)}]}}")
    arguments = (
        f"%a: global {a_type}[{a_size}], %b: global {b_type}[{steps * lanes}],"
        f" %c: global i32[{lanes}]"
    )
    body = "\n".join(lines)
    return f"kernel @steps[]({arguments}) blocks(1, 1, 1) threads(1) stage(thread) {{\n{body}\n}}\n"


CASES = {
    # name: (lanes, steps, a type, b type, a splatted)
    "i8 x i8, 22 lanes: 16 + 4 by instructions, 2 in i32": (22, 4, "i8", "i8", False),
    "u8 x i8, 32 lanes, 3 steps: a pair and one alone": (32, 3, "u8", "i8", False),
    "i16 x i16, 8 lanes": (8, 6, "i16", "i16", False),
    "splatted i8 scalar x i8, 16 lanes": (16, 4, "i8", "i8", True),
    "i8 x i16, 12 lanes": (12, 2, "i8", "i16", False),
    "2 lanes: narrower than every instruction": (2, 4, "i8", "i8", False),
}


def _extremes(dt: str, size: int, rng) -> np.ndarray:
    info = np.iinfo({"i8": np.int8, "u8": np.uint8, "i16": np.int16}[dt])
    values = rng.integers(int(info.min), int(info.max) + 1, size)
    values[::3] = info.min
    values[1::3] = info.max
    return values.astype(info.dtype)


def _run_steps(tmp_path, case: str, target: str, a, b, c) -> np.ndarray:
    path = tmp_path / "steps.ir"
    path.write_text(_steps_kernel(*CASES[case]))
    result = c.copy()
    lpir.compile(path, target=target)(a, b, result)
    return result


@pytest.mark.parametrize("host", list(HIDDEN))
@pytest.mark.parametrize("case", list(CASES))
def test_paired_steps_agree_with_the_interpreter(tmp_path, monkeypatch, case, host):
    lanes, steps, a_type, b_type, splat_a = CASES[case]
    rng = np.random.default_rng(lanes * steps)
    a = _extremes(a_type, steps if splat_a else steps * lanes, rng)
    b = _extremes(b_type, steps * lanes, rng)
    c = rng.integers(-(2**31), 2**31, lanes, dtype=np.int64).astype(np.int32)
    expected = _run_steps(tmp_path, case, "threads", a, b, c)
    _hide(monkeypatch, host)
    assert np.array_equal(_run_steps(tmp_path, case, "cpu", a, b, c), expected)


def test_the_one_pair_sum_past_i32_wraps(tmp_path):
    """(-32768)^2 + (-32768)^2 = 2^31: pmaddwd gives -2^31, as i32 arithmetic wraps."""
    case = "i16 x i16, 8 lanes"
    a = np.full(48, -32768, np.int16)
    c = np.arange(8, dtype=np.int32)
    expected = (c.astype(np.int64) + 6 * 2**30) % 2**32  # 6 products of 2^30
    expected = np.where(expected >= 2**31, expected - 2**32, expected).astype(np.int32)
    assert np.array_equal(_run_steps(tmp_path, case, "threads", a, a, c), expected)
    assert np.array_equal(_run_steps(tmp_path, case, "cpu", a, a, c), expected)


@pytest.mark.parametrize("host, intrinsic", HOSTS)
def test_the_widest_instruction_the_host_has(tmp_path, monkeypatch, host, intrinsic):
    _pretend(monkeypatch, host)  # (the code is only compiled: any host can check any other's)
    path = tmp_path / "steps.ir"
    path.write_text(_steps_kernel(*CASES["i8 x i8, 22 lanes: 16 + 4 by instructions, 2 in i32"]))
    llvm = lpir.compile(path, target="cpu").source("llvm")
    widths = [name for _, name in HOSTS if name is not None]
    wider = widths[: widths.index(intrinsic)] if intrinsic else widths
    assert all(name not in llvm for name in wider)
    if intrinsic is not None:
        assert intrinsic in llvm


def test_the_matmul_benchmark_times_an_exact_i8_dot(tmp_path):
    """benchmarks/cpu_matmul.py's i8 table: the i8 dot's row reports no error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    arguments = "--rows 70 --shapes 96x256 --weights u8 --activations f16 --repeat 1"
    result = subprocess.run(
        [sys.executable, "cpu_matmul.py", *arguments.split(), "--tiles", "64x64x32/64"],
        capture_output=True, text=True, cwd=benchmarks, timeout=300,
        env={**os.environ, "LPIR_CACHE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["i8"]]
    assert len(rows) == 1 and float(rows[0][-1]) == 0.0, result.stdout
