"""Pictures of register layouts: a text grid and a PNG, with ``thread:slot`` in every cell.

People read layouts much faster as pictures than as mode lists. Both pictures show a 2-D
layout as rows x columns and a 1-D (or rank-0) layout as a single row; a replicated element
lists all its threads (``0,1,2,3:0``; the slot is the same for every holder).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lpir.errors import LayoutError, LpirError
from lpir.layout.register import RegisterLayout


def _holders(layout: RegisterLayout) -> tuple[list[list[list[int]]], list[list[int]]]:
    """Per cell (row, column): the sorted threads that hold it, and its slot."""
    if layout.rank > 2:
        raise LayoutError(
            f"can only draw 1-D and 2-D layouts; this one has shape {list(layout.shape)}",
            hint="draw a 2-D slice: reduce, reshape or permute the layout first",
        )
    rows, columns = (1, 1) if layout.rank == 0 else (1, *layout.shape)[-2:]
    threads: list[list[list[int]]] = [[[] for _ in range(columns)] for _ in range(rows)]
    slots = [[0] * columns for _ in range(rows)]
    table = layout.coordinates()
    for thread in range(layout.threads):
        for slot in range(layout.slots):
            row, column = (0, *table[thread, slot])[-2:] if layout.rank else (0, 0)
            threads[row][column].append(thread)
            slots[row][column] = slot
    return threads, slots


def _cell_texts(layout: RegisterLayout) -> list[list[str]]:
    threads, slots = _holders(layout)
    return [
        [f"{','.join(map(str, held))}:{slot}" for held, slot in zip(row, slot_row, strict=True)]
        for row, slot_row in zip(threads, slots, strict=True)
    ]


def render_grid(layout: RegisterLayout) -> str:
    """A text grid: a header row of column indices, a header column of row indices (2-D only),
    and ``thread:slot`` in each cell, right-aligned in columns.
    """
    cells = _cell_texts(layout)
    columns = len(cells[0])
    widths = [max(len(str(c)), *(len(row[c]) for row in cells)) for c in range(columns)]
    label_width = len(str(len(cells) - 1)) if layout.rank == 2 else -1
    header = " ".join(str(c).rjust(w) for c, w in zip(range(columns), widths, strict=True))
    lines = [" " * (label_width + 1) + header]
    for r, row in enumerate(cells):
        label = f"{str(r).rjust(label_width)} " if layout.rank == 2 else ""
        lines.append(label + " ".join(text.rjust(w) for text, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _short_threads(held: list[int]) -> str:
    """Threads as ranges ("0-31", "0,4,8") cut to a length that fits a picture cell."""
    parts, start = [], 0
    for i in range(1, len(held) + 1):
        if i == len(held) or held[i] != held[i - 1] + 1:
            run = held[start:i]
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            start = i
    text = ",".join(parts)
    return text if len(text) <= 9 else f"{parts[0]},…"


def save_png(layout: RegisterLayout, path: str | os.PathLike) -> None:
    """Draw the layout into a PNG: cells coloured by thread and labelled ``thread:slot``.

    Needs matplotlib (``pip install 'lpir[plot]'``); raises LpirError when it is missing.
    """
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LpirError(
            "drawing a layout needs matplotlib, which is not installed",
            hint="pip install 'lpir[plot]' (or pip install matplotlib)",
        ) from None
    threads, slots = _holders(layout)
    rows, columns = len(threads), len(threads[0])
    labels = [
        [f"{_short_threads(held)}:{slot}" for held, slot in zip(row, slot_row, strict=True)]
        for row, slot_row in zip(threads, slots, strict=True)
    ]
    palette = colormaps["tab20"]
    colours = np.array([[palette(row[c][0] % 20)[:3] for c in range(columns)] for row in threads])

    cell_inches = max(0.25, min(0.6, 16 / max(rows, columns)))
    longest = max(len(text) for row in labels for text in row)
    font = max(3.0, min(9.0, cell_inches * 72 * 1.6 / longest))
    width = max(columns * cell_inches + 1.2, 4.0)
    figure = Figure(figsize=(width, rows * cell_inches + 1.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(colours, interpolation="nearest", aspect="equal")
    for r in range(rows):
        for c in range(columns):
            # Dark cells get white text so every label stays legible.
            ink = "white" if colours[r, c] @ (0.299, 0.587, 0.114) < 0.5 else "black"
            axes.text(c, r, labels[r][c], ha="center", va="center", fontsize=font, color=ink)
    _label_axes(axes, layout, rows, columns, font)
    title_font = max(font, 8)
    axes.set_title(_wrapped(str(layout), width, title_font), fontsize=title_font)
    figure.savefig(os.fspath(path), format="png")


def _label_axes(axes: Any, layout: RegisterLayout, rows: int, columns: int, font: float) -> None:
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    axes.set_xticks(range(columns))
    axes.set_xticklabels([str(c) for c in range(columns)], fontsize=font)
    axes.set_yticks(range(rows))
    axes.set_yticklabels([str(r) for r in range(rows)] if layout.rank == 2 else [""], fontsize=font)
    axes.set_xlabel("column" if layout.rank == 2 else "index")
    if layout.rank == 2:
        axes.set_ylabel("row")
    # White lines between cells keep neighbouring cells of similar colours apart.
    axes.set_xticks(np.arange(-0.5, columns), minor=True)
    axes.set_yticks(np.arange(-0.5, rows), minor=True)
    axes.grid(which="minor", color="white", linewidth=0.8)
    axes.tick_params(which="both", length=0)


def _wrapped(title: str, width_inches: float, font: float) -> str:
    """Break a long title into lines that fit the figure (about 0.6 em per character)."""
    per_line = max(20, int(width_inches * 72 / (0.6 * font)))
    return "\n".join(title[i : i + per_line] for i in range(0, len(title), per_line))
