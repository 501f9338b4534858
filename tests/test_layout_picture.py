"""Pictures of layouts: the text grid and the PNG."""

from __future__ import annotations

import sys

import pytest

from lpir.errors import LayoutError, LpirError
from lpir.layout import local, parse, reduce, render_grid, replicate, save_png, spatial

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def grid_cells(text: str) -> dict[tuple[int, int], str]:
    """Parse a 2-D grid printed by render_grid into {(row, column): cell}."""
    header, *rows = text.splitlines()
    columns = [int(c) for c in header.split()]
    cells = {}
    for line in rows:
        row, *values = line.split()
        assert len(values) == len(columns)
        for column, value in zip(columns, values, strict=True):
            cells[int(row), column] = value
    return cells


def test_accumulator_grid():
    layout = parse("local(2,1).spatial(8,4).local(1,2)")
    cells = grid_cells(render_grid(layout))
    assert len(cells) == 16 * 8
    assert cells[9, 3] == "5:3"
    assert cells[0, 0] == "0:0"
    for (row, column), cell in cells.items():
        thread, slot = map(int, cell.split(":"))
        assert layout.map(thread, slot) == (row, column)


def test_columns_are_aligned():
    lines = render_grid(parse("local(2,1).spatial(8,4).local(1,2)")).splitlines()
    assert len({len(line) for line in lines}) == 1
    ends = {
        i
        for i, ch in enumerate(lines[0])
        if ch != " " and (i + 1 == len(lines[0]) or lines[0][i + 1] == " ")
    }
    for line in lines[1:]:
        assert all(line[i] != " " for i in ends)


def test_one_dimensional_layout_is_a_single_row():
    lines = render_grid(spatial(4).local(2)).splitlines()
    assert len(lines) == 2
    assert lines[0].split() == [str(i) for i in range(8)]
    assert lines[1].split() == ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1", "3:0", "3:1"]


def test_replicated_elements_list_all_their_threads():
    reduced = reduce(parse("local(2,1).spatial(8,4).local(1,2)"), 1)
    cells = grid_cells(render_grid(reduced))
    assert cells[0, 0] == "0,1,2,3:0"
    assert cells[9, 0] == "4,5,6,7:1"
    assert render_grid(replicate(3)).splitlines()[-1].strip() == "0,1,2:0"


def test_three_dimensional_layouts_are_refused():
    with pytest.raises(LayoutError, match="1-D and 2-D"):
        render_grid(local(2, 2, 2))


def test_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "mma.png"
    save_png(parse("local(2,1).spatial(8,4).local(1,2)"), path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_png_of_replicated_and_one_dimensional_layouts(tmp_path):
    pytest.importorskip("matplotlib")
    for i, layout in enumerate([reduce(spatial(4, 32), 1), spatial(16).local(4)]):
        path = tmp_path / f"{i}.png"
        save_png(layout, path)
        assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_png_without_matplotlib(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(LpirError, match="matplotlib") as info:
        save_png(spatial(4), tmp_path / "x.png")
    assert "pip install" in info.value.hint
