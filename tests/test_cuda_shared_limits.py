"""A kernel needing more shared memory than a block may have on the architecture compiled for
is a located error before compiling (the driver would refuse the launch naming no tile)."""

from __future__ import annotations

import pytest
from lpir.backends.cuda.compiler import find_nvcc
from lpir.backends.cuda.shared_limits import block_shared_limit

import lpir
from lpir.errors import LpirError

# 4 * S * S bytes of shared memory: 256 KiB at S = 256, 196 KiB at S = 224
BIG = """
kernel big[S = 256](x: global f32[S, S], y: global f32[S, S]) blocks(1) threads(128) {
    s = shared<f32>[S, S]
    store(s, load(x[:, :]))
    store(y[:, :], load(s) * 2.0)
}
"""


def _ptx(arch: str, **params) -> str:
    return lpir.compile(BIG, target="cuda", **params).source("ptx", arch)


def test_the_limits_per_architecture() -> None:
    assert block_shared_limit("sm_80") == 163 * 1024
    assert block_shared_limit("sm_90a") == block_shared_limit("compute_90") == 227 * 1024
    assert block_shared_limit("sm_86") == 99 * 1024
    assert block_shared_limit("sm_999") is None  # not in the table: not checked


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_too_much_shared_memory_is_a_located_error(arch: str) -> None:
    with pytest.raises(LpirError) as caught:
        _ptx(arch)
    text = str(caught.value)
    limit = {"sm_80": 163, "sm_90": 227}[arch]
    assert f"needs 256 KiB of shared memory a block, more than the {limit} KiB" in text, text
    assert "<source>:3:" in text and "shared<f32>[S, S]" in text and "^" in text, text
    assert "smaller shared tiles" in text


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_what_fits_one_architecture_but_not_another() -> None:
    # 196 KiB: past sm_80's 163, inside sm_90's 227
    assert ".visible .entry big" in _ptx("sm_90", S=224)
    with pytest.raises(LpirError, match="more than the 163 KiB a block may have on sm_80"):
        _ptx("sm_80", S=224)
