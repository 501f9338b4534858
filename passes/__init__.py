"""Optimization and lowering passes (installed as `lpir.passes`), one pass per module; the
other modules are parts of a pass (layout_application.py and layout_rules.py of
layout-selection; thread_lowering.py, thread_reductions.py, thread_dots.py, thread_values.py
and matrix_loads.py of lower-to-threads).

Importing this package registers every pass by its kebab-case name; `PassPipeline` runs them
in order and `PIPELINES` lists each target's default pipeline.
"""

from lpir.passes import (  # noqa: F401  (each import registers its pass)
    bit_packing,
    canonicalize,
    cse,
    dce,
    defer_lane_sums,
    drop_replicas,
    fold_threads,
    insert_syncs,
    layout_selection,
    lower_to_threads,
    narrow_dots,
    pipeline_loads,
    prune_barriers,
    vectorize,
    widen_dot_operands,
    widen_exact_casts,
)
from lpir.passes.base import PASSES, Pass, get_pass, register_pass
from lpir.passes.pipeline import PIPELINES, PassPipeline, parse_pipeline

__all__ = [
    "PASSES",
    "PIPELINES",
    "Pass",
    "PassPipeline",
    "get_pass",
    "parse_pipeline",
    "register_pass",
]
