"""layout-selection keeps the layouts of tile IR that has one on every register tile (IR text
printed after it): compiling `kernel.ir("after:layout-selection")` gives the source's final IR,
and the pass run on its own output changes nothing. Before, it read the conversions it had
inserted as annotations and chose again (matmul_wq on the CPU: every replica decoded the
weights, 3.7x slower; attention on the GPU: chained conversions).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lpir.passes import get_pass

from lpir.errors import LayoutError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.runtime.specialization import run_pipeline
from lpir.tools import load_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.lp"))


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_ir_after_layout_selection_compiles_to_the_sources_final_ir(example: Path, target: str):
    stages: dict[str, str] = {}
    final = print_module(run_pipeline(load_module(str(example)), target, stages))
    text = stages["after:layout-selection"]
    again: dict[str, str] = {}
    assert print_module(run_pipeline(parse(text, "<after>"), target, again)) == final
    assert again["after:layout-selection"] == text


ANNOTATED = """\
kernel ann[M = 16, N = 64](x: global f32[M, N], y: global f32[M, N]) blocks(1) threads(32) {
    t = load(x[0 :+ 16, 0 :+ 64]) @ column_spatial(16,2).local(1,32)
    store(y[0 :+ 16, 0 :+ 64], exp(t))
}
"""


def test_a_source_annotation_survives_layout_selection_run_again(tmp_path: Path):
    source = tmp_path / "ann.lp"
    source.write_text(ANNOTATED)
    selection = get_pass("layout-selection")
    once = selection.run(get_pass("canonicalize").run(load_module(str(source))))
    text = print_module(once)
    assert "@ column_spatial(16,2).local(1,32)" in text
    assert print_module(selection.run(parse(text, "<once>"))) == text


SPATIAL, COLUMNS = "spatial(16,2).local(1,32)", "column_spatial(16,2).local(1,32)"
DISAGREEING = f"""\
kernel @ew[](%x: global f32[16, 64], %y: global f32[16, 64]) blocks(1, 1, 1) threads(32) {{
  %0 = constant {{value = 0}} : i32
  %2 = load_global(%x, %0, %0) {{dims = [0, 1], shape = [16, 64]}} : f32[16, 64] @ {SPATIAL}
  %5 = exp(%2) : f32[16, 64] @ {COLUMNS}
  store_global(%y, %0, %0, %5) {{dims = [0, 1]}}
}}
"""


def test_laid_out_tiles_that_must_share_a_layout_but_differ_are_a_located_error():
    with pytest.raises(LayoutError) as caught:
        get_pass("layout-selection").run(parse(DISAGREEING, "ew.ir"))
    text = str(caught.value)
    assert text.startswith("ew.ir:4:")
    assert "%5 has layout column_spatial(16,2).local(1,32) but must share one with %2" in text
    assert "^" in text and "hint: give %5 the layout spatial(16,2).local(1,32)" in text
