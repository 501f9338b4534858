"""f32 -> bf16 on the CPU where a thread holds a lane count that is not a power of two.

On AVX512-BF16 hosts the cast of a power of two of lanes is `vcvtne2ps2bf16` (32 lanes an
instruction) where no lane is a NaN or subnormal, the integer codec in a branch where one is.
At 224 lanes (K = 7168 over 128 threads, 4 rows a block) that branch took what was live
across it from block to block lane by lane: its <224 x i16> codes (420 vpextrw, 196 vpinsrw)
and the store's mask of rows (588 kshift), 1.7-2x the f16 cast. Other lane counts now take
the codec a register at a time, with no branch. Checked here: the codes, bit for bit against
ml_dtypes (NaNs, infinities, ties, subnormals, overflow) at odd lane counts and at 128, and
the assembly for a host with AVX512-BF16 (whichever this one is): vector code, no word or
mask bit moved alone, the instruction kept for a power of two of lanes.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from lpir.backends.llvm import jit

import lpir

ROWS = """
kernel cast_rows[S = f32, D = bf16, K = 4096, BM = 4](
    x: global S[m, K],
    y: global D[m, K],
    m: i32,
) blocks(cdiv(m, BM)) threads(128) {
    rows = block.x * BM
    store(y[rows :+ BM, :], cast<D>(load(x[rows :+ BM, :])))
}
"""

ONE_THREAD = """
kernel cast_lanes[S = f32, N = 48](x: global S[N], y: global bf16[N]) blocks(1) threads(1) {
    store(y[:], cast<bf16>(load(x[:])))
}
"""

#: lanes a thread holds, none a power of two (224: K = 7168 over 128 threads, 4 rows)
ODD_LANES = [48, 80, 100, 200, 224, 240]


def _bits(words: list[int]) -> np.ndarray:
    return np.array(words, np.uint32).view(np.float32)


def _normal_values() -> np.ndarray:
    """f32 values with no NaN or subnormal (vcvtne2ps2bf16's branch): ties to even either
    way, one ulp off them, overflow to infinity and its edge, zeros, infinities, random."""
    rng = np.random.default_rng(38)
    ties = [0x3F808000, 0x3F818000, 0xBF808000, 0x3F80FFFF, 0x3F808001, 0x00808000]
    edges = [0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7F8000, 0x00800000, 0x80800000]
    specials = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000]
    random = rng.integers(0x00800000, 0x7F000000, 400, dtype=np.uint32)
    random |= rng.integers(0, 2, 400, dtype=np.uint32) << 31
    return np.concatenate([_bits(ties + edges + specials), random.view(np.float32)])


def _special_values() -> np.ndarray:
    """NaNs (quiet, signalling, payloads, both signs) and subnormals: the codec's branch."""
    nans = [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF, 0x7FA00000]
    subnormals = [0x00000001, 0x80000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x807F8000]
    return _bits(nans + subnormals)


def _expected(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(ml_dtypes.bfloat16).view(np.uint16)


def _inputs(n: int, specials: bool) -> np.ndarray:
    """n values: normal ones only, or with a NaN or subnormal every 37 lanes."""
    x = np.resize(_normal_values(), n)
    if specials:
        odd = _special_values()
        x[::37] = np.resize(odd, x[::37].size)
    return x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("specials", [False, True], ids=["normal", "nan-subnormal"])
@pytest.mark.parametrize("lanes", [*ODD_LANES, 128])
def test_odd_lane_counts_match_ml_dtypes(lanes, specials):
    kernel = lpir.compile(ONE_THREAD, target="cpu", N=lanes)
    x = _inputs(lanes, specials)
    y = np.zeros(lanes, ml_dtypes.bfloat16)
    kernel(x, y)
    assert np.array_equal(y.view(np.uint16), _expected(x))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("specials", [False, True], ids=["normal", "nan-subnormal"])
@pytest.mark.parametrize("source", ["f32", "f16"])
def test_rows_of_7168_match_ml_dtypes(source, specials):
    """The explorer's kernel: K = 7168, 224 lanes a thread; from f16 too (widened, then the
    same conversion). A block with specials takes the codec, the others the instruction."""
    m, k = 8, 7168
    x = _inputs(m * k, False).reshape(m, k)
    if specials:
        x[5, ::37] = np.resize(_special_values(), x[5, ::37].size)
    if source == "f16":
        x = x.astype(np.float16)
    kernel = lpir.compile(ROWS, target="cpu", S=source, K=k)
    y = np.zeros((m, k), ml_dtypes.bfloat16)
    kernel(x, y, m)
    assert np.array_equal(y.view(np.uint16), _expected(x.astype(np.float32)))


# ---- the code -------------------------------------------------------------------------------
BF16_HOST = (
    "+sse4.2,+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+avx512f,+avx512cd,+avx512bw,+avx512dq,"
    "+avx512vl,+avx512bf16"
)


@pytest.fixture
def bf16_host(monkeypatch, tmp_path):
    """The backend compiling for a CPU with AVX512-BF16, whatever this host is (the cache
    keeps code by the host's features; a private one all the same)."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    jit.host()  # (which sets LLVM's targets up)
    monkeypatch.setattr(
        jit, "host", lambda: ("x86_64-unknown-linux-gnu", "sapphirerapids", BF16_HOST)
    )


def _asm(source: str, **params) -> str:
    return lpir.compile(source, target="cpu", **params).source("asm")


LANE_MOVES = ("vpextrw", "vpinsrw", "vinsertps", "kshiftlb", "kshiftrb")


@pytest.mark.parametrize("lanes", ODD_LANES)
def test_odd_lane_counts_convert_with_no_lane_moved_alone(bf16_host, lanes):
    asm = _asm(ONE_THREAD, N=lanes)
    for lane_move in LANE_MOVES:
        assert lane_move not in asm


@pytest.mark.parametrize("source", ["f32", "f16"])
def test_rows_of_7168_move_no_more_lanes_alone_than_the_f16_cast(bf16_host, source):
    """The loads' mask of rows is built with a few vpinsrw or kshift, once a thread, for every
    cast alike: the bf16 cast adds none (it added 616 word moves and 588 kshift)."""
    bf16 = _asm(ROWS, S=source, K=7168)
    f16 = _asm(ROWS, S=source, D="f16", K=7168)
    for lane_move in LANE_MOVES:
        assert bf16.count(lane_move) <= f16.count(lane_move), lane_move


def test_a_power_of_two_of_lanes_keeps_the_instruction(bf16_host):
    """128 lanes (K = 4096): vcvtne2ps2bf16 behind its rarely taken branch, 4 of them; 224
    lanes: no branch, which would carry the rows' mask across bit by bit."""
    assert _asm(ROWS, K=4096).count("vcvtne2ps2bf16") == 4
    assert "bf16.true" in lpir.compile(ROWS, target="cpu", K=4096).source("llvm")
    assert "bf16.true" not in lpir.compile(ROWS, target="cpu", K=7168).source("llvm")
