"""The pass pipeline's output on disk: the final IR of a specialization, keyed by its tile IR.

A specialization's final IR is a function of its tile IR (the kernel's source lowered with its
parameters, as printed), the pipeline its target runs, lpir's own source and the host (the CPU
pipeline takes AVX512-BF16's dot products where the host has them). A process that meets a
kernel and parameters that one met before parses the final IR it printed instead of running
the passes again: 0.1-0.5 s per specialization of the examples (and a serving process meets
each size of its batches anew). IR text has no source places, so an entry also keeps each
op's place in the kernel's source (errors, `lpir banks` and the SASS map show them), given back
to the parsed ops in the order `walk` visits them. The entries are code-cache entries
(`lpir.runtime.cache`), checked on reading; the key is the machine code's (`jit.cache_key`), so
another lpir, another host or another toolchain never reuses them. `LPIR_PIPELINE_CACHE=0`
runs the passes every time (for work on the passes: the key does not see a pass patched in a
running process; the test suite runs so, but for the cache's own tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from lpir.errors import LpirError, SourceLocation
from lpir.ir.core import Module
from lpir.runtime import cache

KIND = "pipeline"


def enabled() -> bool:
    return os.environ.get("LPIR_PIPELINE_CACHE", "1").strip() != "0"


def key(source_ir: str, pipeline: str, file: str, source: str) -> str:
    """The cache key of the final IR that `pipeline` (its passes as `PIPELINES` lists them)
    makes of the tile IR `source_ir`, lowered from the text `source` of `file` (where its ops'
    places point)."""
    from lpir.backends.llvm import jit
    from lpir.passes import PIPELINES

    passes = ",".join(PIPELINES[pipeline])
    return jit.cache_key(f"pipeline {pipeline}: {passes}\n{file}\n{source}\n{source_ir}")


def store(entry_key: str, final: Module, final_ir: str) -> None:
    """Keep `final` (printed as `final_ir`) and its ops' source places under `entry_key`."""
    places: list[dict[str, Any]] = []
    index: dict[SourceLocation, int] = {}

    def place(location: SourceLocation | None) -> int | None:
        if location is None:
            return None
        if location not in index:
            index[location] = len(places)
            places.append(dataclasses.asdict(location))
        return index[location]

    kernel = final.kernels[0]
    entry = {
        "ir": final_ir,
        "places": places,
        "kernel": place(kernel.location),
        "arguments": [place(p) for p in kernel.argument_locations or []],
        "ops": [place(op.location) for op in kernel.walk()],
    }
    cache.put(KIND, entry_key, json.dumps(entry).encode())


def load(entry_key: str) -> tuple[Module, str] | None:
    """(the final module, its text) cached under `entry_key`, or None (missing, or not IR that
    parses and verifies with a place for each op, which is then made anew)."""
    from lpir.ir.parser import parse
    from lpir.ir.verifier import verify

    payload = cache.get(KIND, entry_key)
    if payload is None:
        return None
    try:
        entry = json.loads(payload)
        text = entry["ir"]
        module = parse(text, "<pipeline cache>")
        verify(module)
        _restore_places(module, entry)
    except (ValueError, KeyError, TypeError, LpirError):
        cache.stats.corrupt += 1
        return None
    return module, text


def _restore_places(module: Module, entry: dict[str, Any]) -> None:
    places = [SourceLocation(**fields) for fields in entry["places"]]

    def place(number: int | None) -> SourceLocation | None:
        return None if number is None else places[number]

    kernel = module.kernels[0]
    ops = list(kernel.walk())
    if len(ops) != len(entry["ops"]):
        raise ValueError("the entry's places do not match its IR")
    for op, number in zip(ops, entry["ops"]):
        op.location = place(number)
    kernel.location = place(entry["kernel"])
    kernel.argument_locations = [place(n) for n in entry["arguments"]] or None  # type: ignore[misc]
