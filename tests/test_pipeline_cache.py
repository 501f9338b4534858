"""The pass pipeline's output cached on disk (`lpir.runtime.pipeline_cache`).

A kernel compiled again with the same tile IR, target pipeline, lpir and host takes the final
IR from the cache (the passes do not run) and computes what the pipeline's output computes; the
stages between are made on demand. Other parameters, another host's features or another lpir
run the passes; an entry that is not IR is made anew.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.backends.llvm import jit

import lpir
from lpir.runtime import cache, pipeline_cache, specialization

SOURCE = """
kernel scaled[N = 300, BN = 64, S = 3](x: global f32[N], y: global f32[N])
    blocks(cdiv(N, BN)) threads(32) {
    i = block.x * BN
    store(y[i :+ BN], load(x[i :+ BN]) * cast<f32>(S) + 1.0)
}
"""


@pytest.fixture(autouse=True)
def pipeline_cache_on(monkeypatch):
    """The suite runs the passes every time (tests/conftest.py); these tests are about not."""
    monkeypatch.setenv("LPIR_PIPELINE_CACHE", "1")


def _run(kernel: lpir.Kernel, n: int = 300) -> np.ndarray:
    x = np.arange(n, dtype=np.float32)
    y = np.zeros(n, np.float32)
    kernel(x, y)
    return y


def _no_pipeline(*args, **kwargs):
    raise AssertionError("the pass pipeline ran")


@pytest.fixture
def fresh_source() -> str:
    """A kernel no earlier test compiled (its constant is this test's own)."""
    return SOURCE.replace("+ 1.0", f"+ {np.random.default_rng().integers(1, 10**6)}.0")


@pytest.mark.parametrize("target", ["cpu", "threads", "threads-cuda"])
def test_a_kernel_compiled_again_skips_the_passes(fresh_source, target, monkeypatch):
    first = lpir.compile(fresh_source, target=target)
    wanted = _run(first)
    stages = first.specialize(None).stages
    cache.forget_memory()  # as a new process would: the entry comes from the disk
    before = cache.stats.disk_hits
    with monkeypatch.context() as patch:
        patch.setattr(specialization, "run_pipeline", _no_pipeline)
        again = lpir.compile(fresh_source, target=target)
        np.testing.assert_array_equal(_run(again), wanted)
        assert again.ir("final") == stages["final"]
    assert cache.stats.disk_hits > before
    # the stages between are the pipeline's, made when asked for
    assert again.ir("after:lower-to-threads") == stages["after:lower-to-threads"]


def test_other_parameters_run_the_passes(fresh_source, monkeypatch):
    _run(lpir.compile(fresh_source, target="cpu"))
    monkeypatch.setattr(specialization, "run_pipeline", _no_pipeline)
    with pytest.raises(AssertionError, match="the pass pipeline ran"):
        lpir.compile(fresh_source, target="cpu", S=4).specialize(None)


@pytest.mark.parametrize(
    ("what", "patch"),
    [
        ("another lpir", lambda p: p.setattr(jit, "lpir_fingerprint", lambda: "other lpir")),
        (
            "a host without AVX512-BF16",
            lambda p: p.setattr(
                jit, "host", lambda: ("x86_64-unknown-linux-gnu", "generic", "-avx512bf16")
            ),
        ),
    ],
)
def test_another_lpir_or_host_runs_the_passes(fresh_source, what, patch, monkeypatch):
    _run(lpir.compile(fresh_source, target="threads"))
    cache.forget_memory()
    ran = []
    real = specialization.run_pipeline
    monkeypatch.setattr(
        specialization, "run_pipeline", lambda *a, **k: ran.append(1) or real(*a, **k)
    )
    with monkeypatch.context() as p:
        patch(p)
        lpir.compile(fresh_source, target="threads").specialize(None)
    assert ran, what


def test_an_entry_that_is_not_ir_is_made_anew(fresh_source):
    kernel = lpir.compile(fresh_source, target="cpu")
    wanted = _run(kernel)
    source = kernel.specialize(None).stages["source"]
    key = pipeline_cache.key(source, "cpu", "<source>", fresh_source)
    cache.put(pipeline_cache.KIND, key, b"kernel @broken(")  # checksummed, yet not IR
    cache.forget_memory()
    before = cache.stats.corrupt
    np.testing.assert_array_equal(_run(lpir.compile(fresh_source, target="cpu")), wanted)
    assert cache.stats.corrupt == before + 1
    assert pipeline_cache.load(key) is not None  # made anew and stored


def test_turned_off_or_with_other_passes_it_runs_the_passes(fresh_source, monkeypatch):
    """LPIR_PIPELINE_CACHE=0 (the test suite's setting); a pipeline whose list of passes
    changed (a test leaving one out) is another pipeline."""
    from lpir.passes import PIPELINES

    _run(lpir.compile(fresh_source, target="threads"))
    cache.forget_memory()
    ran = []
    real = specialization.run_pipeline
    monkeypatch.setattr(
        specialization, "run_pipeline", lambda *a, **k: ran.append(1) or real(*a, **k)
    )
    with monkeypatch.context() as patch:
        patch.setenv("LPIR_PIPELINE_CACHE", "0")
        lpir.compile(fresh_source, target="threads").specialize(None)
    assert len(ran) == 1
    with monkeypatch.context() as patch:
        without = tuple(name for name in PIPELINES["cpu"] if name != "fold-threads")
        patch.setitem(PIPELINES, "cpu", without)
        lpir.compile(fresh_source, target="threads").specialize(None)
    assert len(ran) == 2
    lpir.compile(fresh_source, target="threads").specialize(None)
    assert len(ran) == 2  # the pipeline as it is: from the cache


EXAMPLES = sorted(path.stem for path in Path("examples").glob("*.lp"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_cuda_c_of_a_cached_final_ir_is_the_same(example):
    """Shared tiles without a name in the source were named by their IR number only once
    parsed (`v27_swizzled_0` for `shared_swizzled_0`)."""
    path = f"examples/{example}.lp"
    made = lpir.compile(path, target="cuda").source("cuda")
    cache.forget_memory()
    assert lpir.compile(path, target="cuda").source("cuda") == made


def test_a_cached_final_ir_keeps_its_ops_source_places(fresh_source, tmp_path):
    """IR text has no places: parsed alone, every op pointed into '<pipeline cache>' (lpir
    banks printed that), or into another file holding the same kernel."""
    path = tmp_path / "k.lp"
    path.write_text(fresh_source)
    made = lpir.compile(path, target="cpu").specialize(None).module.kernels[0]
    cache.forget_memory()
    again = lpir.compile(path, target="cpu").specialize(None).module.kernels[0]
    places = [op.location for op in made.walk()]
    assert [op.location for op in again.walk()] == places
    assert again.location == made.location and str(path) in str(again.location)
    other = tmp_path / "same.lp"  # the same kernel in another file: its own places
    other.write_text(fresh_source)
    elsewhere = lpir.compile(other, target="cpu").specialize(None).module.kernels[0]
    assert all("same.lp" in str(op.location) for op in elsewhere.walk() if op.location)
