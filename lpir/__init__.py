"""lpir: a compiler for low-precision tensor kernels.

import lpir
k = lpir.compile("examples/gemv_wq.lp", target="cpu", WT="u3")
k(x, lpir.pack(q, "u3"), s, y)
"""

from __future__ import annotations

from typing import Any

from lpir.dtypes import DType, convert, dtype
from lpir.errors import ArgumentError, LpirError, SourceLocation
from lpir.packing import PackedArray, pack, pack_codes, unpack
from lpir.runtime.kernel import Kernel, compile

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # lpir.DevicePacked (packed storage in GPU memory) loads the CUDA backend's array code
    # only when asked for.
    if name == "DevicePacked":
        from lpir.backends.cuda.arrays import DevicePacked

        return DevicePacked
    raise AttributeError(f"module 'lpir' has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "DType",
    "DevicePacked",
    "Kernel",
    "LpirError",
    "PackedArray",
    "SourceLocation",
    "__version__",
    "compile",
    "convert",
    "dtype",
    "pack",
    "pack_codes",
    "unpack",
]
