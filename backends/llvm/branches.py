"""A value computed one of two ways, chosen by a branch at run time.

For vector code with a rare slow case (sin and cos of huge arguments, which libm reduces; a
bf16 rounding whose lanes hold a NaN or subnormal, which the codec handles): the branch is
taken once per vector, and only the chosen way runs.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir


def branch_value(
    b: ir.IRBuilder,
    condition: ir.Value,
    when_true: Callable[[], ir.Value],
    when_false: Callable[[], ir.Value],
    name: str,
    rarely_true: bool = False,
) -> ir.Value:
    """`when_true()` where the i1 `condition` holds, else `when_false()`, each emitted in a
    block of its own (`name`.true / `name`.false) and joined by a phi in `name`.done, where
    the builder is left. `rarely_true` weighs the branch so that the false way is the one the
    code falls through to."""
    function = b.function
    blocks = [function.append_basic_block(f"{name}.{side}") for side in ("true", "false")]
    done = function.append_basic_block(f"{name}.done")
    branch = b.cbranch(condition, *blocks)
    if rarely_true:
        branch.set_weights([1, 1000])
    results = []
    for block, emit in zip(blocks, (when_true, when_false), strict=True):
        b.position_at_end(block)
        value = emit()
        results.append((value, b.block))  # the block that reaches `done`
        b.branch(done)
    b.position_at_end(done)
    joined = b.phi(results[0][0].type)
    for value, block in results:
        joined.add_incoming(value, block)
    return joined


__all__ = ["branch_value"]
