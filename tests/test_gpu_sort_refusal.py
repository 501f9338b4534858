"""A GPU sort too long to unroll is refused with sizes that fit (passes/thread_sorts.py).

The message said "1 whole lines of 256" and "a run of 32 of each of 1 lines", and its hint
named "a line of 2048 over 128 threads" as fine while refusing 4 lines of 2048 over 256
threads (64 threads a line): it counted threads a block, not threads a line. It now says how
many elements of a line a thread may sort, the threads a line that makes, and two remedies
from the refused block's own sizes: more threads for its lines, or fewer lines a block over
its threads; each is checked to compile here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lpir
from lpir.errors import LpirError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

ROWS = """
kernel k(x: global f32[L, 2048], y: global f32[L, 2048]) blocks(1) threads(T) {
    store(y[:, :], sort(load(x[:, :]), axis = 1))
}
"""


def lowered(source: str | Path, **params) -> None:
    lpir.compile(source, target="threads-cuda", **params).specialize(None)


def refusal(source: str | Path, **params) -> str:
    with pytest.raises(LpirError) as caught:
        lowered(source, **params)
    return str(caught.value)


def test_lines_split_over_threads_name_the_threads_a_line() -> None:
    text = refusal(ROWS.replace("L", "4").replace("T", "256"))
    assert "each thread would hold 32 elements (a run of 32 of a line of 2048)" in text
    assert (
        "hint: on the GPU a thread sorts at most 16 elements of a line of 2048 (16 x 66 steps "
        "within 1344), so 128 threads a line: threads(512) for these 4 lines; or 2 lines a "
        "block over its 256 threads (a smaller tile); or sort on the cpu target"
    ) in text
    lowered(ROWS.replace("L", "4").replace("T", "512"))
    lowered(ROWS.replace("L", "2").replace("T", "256"))


def test_whole_lines_a_thread_say_one_line_and_fewer_lines_a_block() -> None:
    """moe_topk with DeepSeek-V3's 256 experts: 64 rows over 64 threads, a line a thread."""
    params = {"E": 256, "BE": 256, "K": 8}
    text = refusal(EXAMPLES / "moe_topk.lp", **params)
    assert "each thread would hold 256 elements (one whole line of 256)" in text
    assert "1 whole lines" not in text
    assert (
        "so 8 threads a line: threads(512) for these 64 lines; or 8 lines a block over its 64 "
        "threads (a smaller tile)"
    ) in text
    lowered(EXAMPLES / "moe_topk.lp", BM=8, **params)
