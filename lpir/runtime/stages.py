"""A specialization's IR text at each stage of its pipeline, printed when first asked for.

`Kernel.ir("after:<pass>")` shows the IR after any pass, but a compile does not print a dozen
modules that nobody reads (printing them was a tenth of a test run's time): `StageTexts` keeps
the source and final modules and, the first time an intermediate stage is asked for, runs the
pipeline again from the source, recording every stage's text. Passes are deterministic and
never change the module they are given (tests/test_roundtrip.py checks both for every example),
so the replay prints what the compile made.

Verification: the source module (the lowering's tile IR, or parsed IR text) and the final
module are always verified. Between passes the pipeline verifies only where
`LPIR_VERIFY_EACH=1` is set, as LLVM's `opt -verify-each`: the checks cost a quarter of a
compile, and the tests that watch the passes (every example after every pass, random kernels,
the FileCheck pass tests, `lpir opt`) run them after every pass themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

from lpir.ir.core import Module
from lpir.ir.printer import print_module

VERIFY_EACH_VARIABLE = "LPIR_VERIFY_EACH"


def verify_each_pass() -> bool:
    """Whether `LPIR_VERIFY_EACH` asks for the IR to be verified after every pass."""
    return os.environ.get(VERIFY_EACH_VARIABLE, "").strip() not in ("", "0")


def stage_labels(passes: Sequence[str]) -> list[str]:
    """ "after:<pass>" for each of `passes`, "after:<pass>#2", "#3", ... where one runs again."""
    counts: dict[str, int] = {}
    labels = []
    for name in passes:
        counts[name] = counts.get(name, 0) + 1
        labels.append(f"after:{name}" if counts[name] == 1 else f"after:{name}#{counts[name]}")
    return labels


class StageTexts(Mapping[str, str]):
    """IR text by stage name: "source", one "after:<pass>" per pass that ran, "final".

    Args:
        source: the module the pipeline started from.
        final: the module it made (`source` itself where no pass ran).
        passes: the names of the passes that ran, in order.
        replay: runs those passes again on `source`, calling back with (stage label, module)
            after each; used once, for the first intermediate stage asked for.
    """

    def __init__(
        self,
        source: Module,
        final: Module,
        passes: Sequence[str] = (),
        replay: Callable[[Module, Callable[[str, Module], None]], object] | None = None,
    ):
        self._modules = {"source": source, "final": final}
        self._labels = ["source", *stage_labels(passes), "final"]
        self._replay = replay
        self._texts: dict[str, str] = {}

    def __getitem__(self, label: str) -> str:
        if label not in self._texts:
            if label in self._modules:
                self._texts[label] = print_module(self._modules[label])
            elif label in self._labels and self._replay is not None:
                self._record_every_stage()
            else:
                raise KeyError(label)
        return self._texts[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def _record_every_stage(self) -> None:
        assert self._replay is not None

        def record(label: str, module: Module) -> None:
            self._texts.setdefault(label, print_module(module))

        self._replay(self._modules["source"], record)
