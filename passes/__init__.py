"""Optimization and lowering passes (installed as `lpir.passes`), one pass per module.

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
