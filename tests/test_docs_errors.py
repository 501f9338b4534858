"""docs/language.md's "Errors" example is what lpir prints for its kernel, byte for byte (the
source line and the caret are indented by 4 spaces, which the example left out)."""

from __future__ import annotations

import re
from pathlib import Path

from lpir.cli import main

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
