"""The targets that run a kernel on this machine, for tests that check one kernel everywhere:
the reference interpreter, the thread-IR interpreter, the CPU, and the CUDA C on the host
(skipped without a host C++ compiler)."""

from __future__ import annotations

import pytest
from lpir.backends.cuda.emulation import emulation_available

HOST_TARGETS = [
    "interp",
    "threads",
    "cpu",
    pytest.param(
        "cuda-host",
        marks=pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler"),
    ),
]
