"""docs/language.md's "Errors" example is what lpir prints for its kernel, byte for byte (the
source line and the caret are indented by 4 spaces, which the example left out); its snippets
compile, and its claims about rsqrt, cdiv and storage types hold on every target."""

from __future__ import annotations

import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.cli import main
from lpir.errors import LpirError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"

# the kernel of the example: line 12 multiplies a [BN, BK] tile by a [BN] one
GEMV = """# y = (w * s) x, with s a scale per row
kernel gemv[N = 4096, K = 4096, BN = 64, BK = 128](
    x: global f32[K], w: global f32[N, K], s: global f32[N], y: global f32[N],
) blocks(cdiv(N, BN)) threads(128) {
    rows = block.x * BN
    acc = zeros<f32>[BN, BK]
    st = load(s[rows :+ BN])
    for k0 in range(0, K, BK) {
        wt = load(w[rows :+ BN, k0 :+ BK])
        xt = load(x[k0 :+ BK])
        acc += wt * xt[None, :]
        acc += wt * st
    }
    store(y[rows :+ BN], sum(acc, axis = 1))
}
"""


def test_the_errors_example_is_the_real_output(tmp_path, monkeypatch, capsys):
    section = DOCS.read_text(encoding="utf-8").split("\n## Errors\n")[1]
    shown = re.search(r"```\n(.*?)```", section, re.DOTALL).group(1)
    (tmp_path / "gemv.lp").write_text(GEMV)
    monkeypatch.chdir(tmp_path)
    assert main(["opt", "gemv.lp"]) == 1
    assert capsys.readouterr().err == shown


def test_the_histogram_snippet_compiles_and_counts():
    """The snippet was `atomic_add(hist[bins], ones)`, and `ones` is a reserved word."""
    snippet = re.search(r"`(atomic_add\(hist\[bins\], [^`]*)`", DOCS.read_text()).group(1)
    source = (
        "kernel k[BN = 64](x: global i32[BN], hist: global u32[8]) blocks(1) threads(32) {\n"
        f"    bins = load(x[:])\n    {snippet}\n}}\n"
    )
    x = (np.arange(64) * 7 % 9).astype(np.int32)  # bins of 8 are outside hist: not written
    hist = np.zeros(8, np.uint32)
    lpir.compile(source, target="interp")(x, hist)
    np.testing.assert_array_equal(hist, np.bincount(x, minlength=9)[:8])


RSQRT = """kernel k[T, N](a: global T[N], r: global T[N]) blocks(1) threads(128) {
    store(r[:], rsqrt(load(a[:])))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_rsqrt_of_f16_and_bf16_rounds_the_f32_result_once(target: str, dtype: str):
    """As docs/language.md says (it said "1 / sqrt(x), two roundings" of every dtype): the
    f32 1 / sqrt(x), rounded once, which differs from 1.0 / sqrt(x) in f16 by an ulp."""
    codes = np.arange(1, 0x7C00 if dtype == "f16" else 0x7F80, 37, dtype=np.uint16)
    x = codes.view(np.float16 if dtype == "f16" else ml_dtypes.bfloat16)
    r = np.zeros_like(x)
    lpir.compile(RSQRT, target=target, T=dtype, N=len(x))(x, r)
    wide = x.astype(np.float32)
    np.testing.assert_array_equal(r, (np.float32(1) / np.sqrt(wide)).astype(x.dtype))


CDIV = """kernel k(a: global i32[4], b: global i32[4], c: global i32[4]) blocks(1) threads(4) {
    store(c[:], cdiv(load(a[:]), load(b[:])))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_cdiv_rounds_up_and_by_a_run_time_zero_gives_zero(target: str):
    a = np.array([-7, 7, 2**31 - 1, 5], np.int32)
    b = np.array([2, 2, 2, 0], np.int32)
    c = np.zeros(4, np.int32)
    lpir.compile(CDIV, target=target)(a, b, c)
    np.testing.assert_array_equal(c, [-3, 4, 2**30, 0])
    with pytest.raises(LpirError, match="cdiv by zero"):
        lpir.compile(CDIV.replace("load(b[:])", "0"), target=target).specialize(None)


STORAGE = """kernel k[T](x: global T[32], i: global i32[32], y: global T[32]) blocks(1) threads(32)
{
    s = shared<T>[32]
    store(s, load(x[:], mask = arange(32) < 30, other = 1))
    t = where(arange(32) < 3, load(s), full<T>[32](load(x[31])))
    t = reshape(transpose(reshape(t, 4, 8)), 32) @ spatial(32)
    u = reshape(stack(reshape(t, 2, 16)[0, :], t[16:]), 32)
    p = reshape(where(arange(8)[:, None] < 8, arange<T>(4)[None, :], zeros<T>[8, 4]), 32)
    v = u + zeros<T>[32] + ones<T>[32] + p
    store(y[load(i[:])], cast<T>(cast<f32>(view<T>(view<u8>(v)))), mask = arange(32) > 0)
}
"""


@pytest.mark.parametrize("dtype", ["u4", "i3", "f4e2m1", "f8e4m3"])
def test_what_the_docs_say_storage_types_take(dtype: str):
    """docs/language.md listed load, store, cast and view only; shared tiles, masks, gathers,
    scatters, scalars, constant tiles, reshape, transpose, stack, subscripts, where and
    layouts work too, and arithmetic does not."""
    kernel = STORAGE.replace(" + zeros<T>[32] + ones<T>[32] + p", "")
    # p: arange<T>(4) repeated, since 0..3 fit every T here (i3 holds -4 to 3) and 0..31 not
    for made in ("u", "zeros<T>[32]", "ones<T>[32]", "p"):
        source = kernel.replace("v = u", f"v = {made}")
        lpir.compile(source, target="interp", T=dtype).specialize(None)
    with pytest.raises(LpirError, match=r"not defined on .*storage-only type"):
        lpir.compile(STORAGE, target="interp", T=dtype).specialize(None)


DEFS_AND_LITERALS = """def twice(v) {
    return twice(v) * 2.0
}

def rows_of_block(BM) {
    return block.x * BM
}

kernel k[BM = 4](x: global f32[m, 8], y: global f32[m, 8], m: i32) blocks(1) threads(32) {
    static_assert(010 == 10, "a leading zero is decimal")
    r = rows_of_block(BM)
    if false {
        store(y[r :+ BM, :], twice(load(x[r :+ BM, :])))
    }
    store(y[r :+ BM, :], load(x[r :+ BM, :]) + 1.0)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_what_the_docs_say_of_literals_defs_and_run_time_rows(target: str):
    """010 is decimal 10; a def's body sees block.x; a recursive def that only a dropped
    branch calls is accepted; a first dimension read at run time may be 0 in a call that
    runs blocks."""
    kernel = lpir.compile(DEFS_AND_LITERALS, target=target)
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    y = np.zeros((4, 8), np.float32)
    kernel(x, y, np.int32(4))
    np.testing.assert_array_equal(y, x + 1)
    empty = np.zeros((0, 8), np.float32)
    kernel(empty, empty.copy(), np.int32(0))
    for mistake in ("0o17", "1_000", "0x1p3"):
        source = DEFS_AND_LITERALS.replace("010 == 10", f"{mistake} == 10")
        with pytest.raises(LpirError):
            lpir.compile(source, target=target)
