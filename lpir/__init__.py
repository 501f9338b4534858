"""lpir: a compiler for low-precision tensor kernels.

import lpir
k = lpir.compile("examples/gemv_wq.lp", target="cpu", WT="u3")
k(x, lpir.pack(q, "u3"), s, y)
"""

from __future__ import annotations

from lpir.dtypes import DType, convert, dtype
from lpir.errors import LpirError, SourceLocation
from lpir.packing import PackedArray, pack, pack_codes, unpack
from lpir.runtime.kernel import Kernel, compile

__version__ = "0.1.0"

__all__ = [
    "DType",
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
