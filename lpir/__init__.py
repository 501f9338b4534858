"""lpir: a compiler for low-precision tensor kernels."""

from __future__ import annotations

from lpir.errors import LpirError, SourceLocation

__version__ = "0.1.0"

__all__ = ["LpirError", "SourceLocation", "__version__"]
