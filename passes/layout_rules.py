"""Layout rules used by layout-selection: one function per relation an op imposes.

* `default_layout`: a tile nobody constrains (the target's preferred distribution);
* `broadcast_operand`, `expand_dims_result`, `squeeze`, `reduce_result`: how a layout passes
  through shape ops;
* `view_result` / `view_operand`: bit reinterpretation to a narrower or wider dtype;
* `dot_layouts`: the operand layouts that a `dot` with a given accumulator layout needs.
"""

from __future__ import annotations

import math

from lpir import layout as L
from lpir.layout import RegisterLayout
from lpir.targets import Target


def _replicated(layout: RegisterLayout, threads: int) -> RegisterLayout:
    if layout.threads == threads:
        return layout
    return L.replicate(threads // layout.threads) * layout


def contiguous_layout(shape: tuple[int, ...], threads: int) -> RegisterLayout:
    """Each thread holds a block that is as long as possible along the last dimensions.

    Threads that would get nothing replicate the tile: with fewer elements than threads, or a
    size that does not divide by the thread count, some threads hold copies.
    """
    size = math.prod(shape)
    used = math.gcd(size, threads)
    remaining = size // used
    local_sizes = [1] * len(shape)
    for dim in reversed(range(len(shape))):
        local_sizes[dim] = math.gcd(shape[dim], remaining)
        remaining //= local_sizes[dim]
    if remaining != 1:
        return _replicated(L.local(*shape), threads)
    spatial_sizes = [s // l for s, l in zip(shape, local_sizes)]
    return _replicated(L.spatial(*spatial_sizes) * L.local(*local_sizes), threads)


def coalesced_layout(shape: tuple[int, ...], nbits: int, threads: int, vector_bytes: int):
    """GPU style: each thread holds `vector_bytes` of consecutive elements of the last
    dimension, neighbouring threads hold neighbouring vectors, and the pattern repeats."""
    per_thread = max(1, vector_bytes * 8 // nbits)
    per_thread = 1 << (per_thread.bit_length() - 1)
    vector = math.gcd(shape[-1], per_thread)
    inner = list(shape[:-1]) + [shape[-1] // vector]
    thread_sizes = [1] * len(shape)
    remaining = threads
    for dim in reversed(range(len(shape))):
        thread_sizes[dim] = math.gcd(inner[dim], remaining)
        remaining //= thread_sizes[dim]
    repeat = [i // t for i, t in zip(inner, thread_sizes)]
    vector_sizes = [1] * (len(shape) - 1) + [vector]
    layout = L.local(*repeat) * L.spatial(*thread_sizes) * L.local(*vector_sizes)
    return _replicated(layout, threads)


def default_layout(shape: tuple[int, ...], nbits: int, threads: int, target: Target):
    if target.coalesced_loads:
        return coalesced_layout(shape, nbits, threads, target.vector_bytes)
    return contiguous_layout(shape, threads)


def squeeze(layout: RegisterLayout, axis: int) -> RegisterLayout:
    """Drop the size-1 dimension `axis`."""
    shape = layout.shape[:axis] + layout.shape[axis + 1 :]
    return L.reshape(layout, shape)


def broadcast_operand(result: RegisterLayout, operand_shape: tuple[int, ...]):
    """The operand layout a broadcast needs: each thread already holds what it repeats."""
    dims = [d for d, (a, b) in enumerate(zip(operand_shape, result.shape)) if a == 1 and b != 1]
    return L.reduce(result, dims) if dims else result


def expand_dims_result(operand: RegisterLayout, axis: int) -> RegisterLayout:
    return L.expand_dims(operand, axis)


def reduce_result(operand: RegisterLayout, axis: int) -> RegisterLayout:
    return squeeze(L.reduce(operand, [axis]), axis)


def _last_dim_factor(rank: int, factor: int) -> RegisterLayout:
    return L.local(*([1] * (rank - 1) + [factor]))


def view_result(operand: RegisterLayout, source_bits: int, target_bits: int):
    """Each element splits into (or several merge into) consecutive local slots."""
    rank = operand.rank
    if source_bits == target_bits:
        return operand
    if source_bits > target_bits:
        return operand * _last_dim_factor(rank, source_bits // target_bits)
    return L.divide(operand, _last_dim_factor(rank, target_bits // source_bits))


def view_operand(result: RegisterLayout, source_bits: int, target_bits: int):
    return view_result(result, target_bits, source_bits)


def dot_accumulator_layout(m: int, n: int, threads: int) -> RegisterLayout:
    """SIMT dot: each thread owns a near-square block of the accumulator, so the rows of a and
    columns of b it must hold are few."""
    size = m * n
    used = math.gcd(size, threads)
    best = None
    for spatial_m in _divisors(m):
        spatial_n = used // spatial_m
        if used % spatial_m or n % spatial_n:
            continue
        local_m, local_n = m // spatial_m, n // spatial_n
        cost = (local_m + local_n, -local_n)
        if best is None or cost < best[0]:
            best = (cost, spatial_m, spatial_n, local_m, local_n)
    if best is None:
        return contiguous_layout((m, n), threads)
    _, spatial_m, spatial_n, local_m, local_n = best
    layout = L.spatial(spatial_m, spatial_n) * L.local(local_m, local_n)
    return _replicated(layout, threads)


def dot_layouts(accumulator: RegisterLayout, k: int) -> tuple[RegisterLayout, RegisterLayout]:
    """Operand layouts for a SIMT dot: the thread owning acc[i, j] holds a[i, :] and b[:, j]."""
    a = L.reduce(accumulator, [1]) * L.local(1, k)
    b = L.local(k, 1) * L.reduce(accumulator, [0])
    return a, b


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
