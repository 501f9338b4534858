"""Each pass runs at one stage (`Pass.stage`, `Pass.needs_layouts`), which a pipeline checks
before running it; the messages are pinned in tests/filecheck/passes/wrong_stage.*. Here: the
GPU's pipeline-loads asked for on the CPU runs, and thread IR goes through no pass in
`--print-after-all`, as through none in `lpir run`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.passes import PIPELINES, PassPipeline

import lpir
from lpir.cli import main
from lpir.errors import LpirError
from lpir.ir.parser import parse
from lpir.tools import load_module, optimize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GEMV = str(EXAMPLES / "gemv_wq.lp")
SMALL = {"N": 128, "K": 512}

THREAD = """\
kernel @ids[](%y: global i32[32]) blocks(1, 1, 1) threads(32) stage(thread) {
  %tid = thread_index : i32
  %v = splat(%tid) {shape = [1]} : <1 x i32>
  st(%y, %tid, %v) {offsets = [0]}
}
"""


def test_pipeline_loads_asked_for_on_the_cpu_runs_and_keeps_the_values():
    """The CPU's pipeline leaves pipeline-loads out (slower there: gemv_wq 2.1 -> 2.5 ms); `-p`
    runs it all the same, for a loop that asks for stages, and the CPU runs the result."""
    names = list(PIPELINES["cpu"])
    names.insert(names.index("prune-barriers") + 1, "pipeline-loads")
    text = optimize(GEMV, passes=",".join(names), target="cpu", params=SMALL)
    assert "stages 2 iter_args" in text
    pipelined = lpir.compile(text, target="cpu")
    plain = lpir.compile(GEMV, target="cpu", **SMALL)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(512).astype(np.float32)
    w = lpir.PackedArray(rng.integers(0, 256, (128, 512 // 2), dtype=np.uint8), (128, 512), "u4")
    s = rng.standard_normal((128, 4)).astype(np.float32)
    y1, y2 = np.zeros(128, np.float32), np.zeros(128, np.float32)
    plain(x, w, s, y1)
    pipelined(x, w, s, y2)
    np.testing.assert_array_equal(y1, y2)


def test_print_after_all_on_thread_ir_runs_no_pass(tmp_path: Path, capsys):
    path = tmp_path / "ids.ir"
    path.write_text(THREAD)
    assert main(["opt", str(path), "--print-after-all"]) == 0
    out = capsys.readouterr().out
    assert "IR after" not in out
    assert out.count("thread_index") == 1


@pytest.mark.parametrize("name", ["lower-to-threads", "layout-selection", "narrow-dots"])
def test_a_tile_pass_on_thread_ir_is_an_error_naming_it(name: str):
    with pytest.raises(LpirError, match=f"pass {name} runs on tile IR, but kernel @ids is thread"):
        PassPipeline([name]).run(parse(THREAD, "ids.ir"))


@pytest.mark.parametrize("name", ["vectorize", "bit-packing", "pipeline-loads", "prune-barriers"])
def test_a_thread_pass_on_tile_ir_is_an_error_naming_it(name: str):
    with pytest.raises(LpirError, match=f"pass {name} runs on thread IR, but kernel @gemv_wq is"):
        PassPipeline([name], target="cuda").run(load_module(GEMV))


@pytest.mark.parametrize("name", ["insert-syncs", "drop-replicas", "fold-threads"])
def test_a_pass_that_needs_layouts_before_layout_selection_is_an_error(name: str):
    with pytest.raises(LpirError, match=f"pass {name} runs on tile IR whose register tiles"):
        PassPipeline([name]).run(load_module(GEMV))
