"""The pass pipeline's output on disk: the final IR of a specialization, keyed by its tile IR.

A specialization's final IR is a function of its tile IR (the kernel's source lowered with its
parameters, as printed), the pipeline its target runs, lpir's own source and the host (the CPU
pipeline takes AVX512-BF16's dot products where the host has them). A process that meets a
kernel and parameters that one met before parses the final IR it printed instead of running
the passes again: 0.1-0.5 s per specialization of the examples (and a serving process meets
each size of its batches anew). The entries are code-cache entries (`lpir.runtime.cache`),
checked on reading; the key is the machine code's (`jit.cache_key`), so another lpir, another
host or another toolchain never reuses them.
"""

from __future__ import annotations

from lpir.errors import LpirError
from lpir.ir.core import Module
from lpir.runtime import cache

KIND = "pipeline"


def key(source_ir: str, pipeline: str) -> str:
    """The cache key of the final IR that `pipeline` makes of the tile IR `source_ir`."""
    from lpir.backends.llvm import jit

    return jit.cache_key(f"pipeline {pipeline}\n{source_ir}")


def load(entry_key: str) -> tuple[Module, str] | None:
    """(the final module, its text) cached under `entry_key`, or None (missing or not IR that
    parses and verifies, which is then made anew)."""
    from lpir.ir.parser import parse
    from lpir.ir.verifier import verify

    payload = cache.get(KIND, entry_key)
    if payload is None:
        return None
    try:
        text = payload.decode()
        module = parse(text, "<pipeline cache>")
        verify(module)
    except (UnicodeDecodeError, LpirError):
        cache.stats.corrupt += 1
        return None
    return module, text


def store(entry_key: str, final_ir: str) -> None:
    cache.put(KIND, entry_key, final_ir.encode())
