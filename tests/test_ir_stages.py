"""`Kernel.ir(stage)` prints a stage when asked for (lpir/runtime/stages.py), and a compile
verifies the IR between passes only where `LPIR_VERIFY_EACH` asks for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lpir.passes import PassPipeline

import lpir
from lpir.ir.printer import print_module
from lpir.runtime.specialization import run_pipeline
from lpir.runtime.stages import VERIFY_EACH_VARIABLE

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("target", ["cpu", "cuda", "interp"])
def test_every_stage_prints_what_the_pipeline_made(target):
    """The stages replayed on demand are the texts a pipeline recording every pass makes, and
    the last pass's is the final IR."""
    spec = lpir.compile(EXAMPLES / "softmax.lp", target=target).specialize(None)
    recorded: dict[str, str] = {}
    source = lpir.ir.parse(spec.ir("source"), "<source>")
    final = run_pipeline(source, target, recorded)
    labels = list(spec.stages)
    assert labels == ["source", *recorded, "final"]
    assert {label: spec.ir(label) for label in recorded} == recorded
    assert spec.ir("final") == print_module(final) == recorded[labels[-2]]


def test_a_pass_run_twice_is_recorded_with_its_count():
    labels = list(lpir.compile(EXAMPLES / "softmax.lp", target="cpu").specialize(None).stages)
    assert "after:dce" in labels and "after:dce#2" in labels


def test_an_unknown_stage_names_the_known_ones():
    kernel = lpir.compile(EXAMPLES / "softmax.lp", target="interp")
    with pytest.raises(lpir.LpirError) as caught:
        kernel.ir("after:nothing")
    assert "after:cse" in str(caught.value)


@pytest.mark.parametrize("each", ["", "1"])
def test_the_ir_is_verified_between_passes_where_asked(monkeypatch, tmp_path, each):
    """The source and the final IR always; after every pass with LPIR_VERIFY_EACH=1."""
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(VERIFY_EACH_VARIABLE, each)
    pipeline = sys.modules[PassPipeline.__module__]
    verified = []
    original = pipeline.verify
    monkeypatch.setattr(
        pipeline, "verify", lambda module: verified.append(module) or original(module)
    )
    spec = lpir.compile(EXAMPLES / "vector_add.lp", target="cpu").specialize(None)
    passes = len(spec.stages) - 2
    assert len(verified) == (passes if each else 0)
