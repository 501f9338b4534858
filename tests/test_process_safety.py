"""Kernels called from forked processes and from several Python threads, and source lines
that every location shares (found by an explorer probing limits):

* a forked child inherited the parent's CPU worker pool without its threads: its first call
  that split the grid waited forever;
* two threads calling cuda-host kernels that synchronize waited on each other's barriers
  (the emulation's barriers are process-wide): one emulated grid runs at a time;
* every op's location split the whole source again: an 8000-line kernel took 28 s to lower;
* threads whose first calls of one shape came at once each built that shape's specialization;
  the ones that lost the race were freed, but their argument checks stayed keyed by their
  id, and a later specialization at the same address was checked with a dead one's dtypes
  ("argument q must hold f4e2m1, got a PackedArray of f6e3m2");
* lpir.compile only parsed: the first call imported the passes and the backend, so a child
  forked while another thread made a first call waited forever on an import lock.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

DOUBLE = """
kernel twice[N, BN = 64](x: global f32[N], y: global f32[N]) blocks(cdiv(N, BN)) threads(32) {
    r = block.x * BN
    t = load(x[r :+ BN])
    store(y[r :+ BN], t + sum(t, axis = 0) * 0.0 + t)
}
"""


def _child(queue) -> None:  # (at module level: the fork context runs it in the child)
    kernel = lpir.compile(DOUBLE, target="cpu")
    x = np.ones(1 << 16, np.float32)
    y = np.zeros_like(x)
    kernel(x, y)
    queue.put(bool((y == 2).all()))


def test_a_forked_child_runs_a_kernel_after_its_parent_did() -> None:
    kernel = lpir.compile(DOUBLE, target="cpu")
    x = np.ones(1 << 16, np.float32)  # 1024 blocks: split over the parent's workers
    y = np.zeros_like(x)
    kernel(x, y)
    kernel(x, y)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and child.exitcode == 0 and queue.get(timeout=5)


FIRST_CALLS = """
import sys
import numpy as np
import lpir

target = sys.argv[1]
examples = sys.argv[2]
vector_add = lpir.compile(examples + "/vector_add.lp", target=target)
gemv = lpir.compile(examples + "/gemv_wq.lp", target=target, N=256, K=256)
x, w = np.ones(1 << 16, np.float32), lpir.pack(np.full((256, 256), 3), "u4")
before = set(sys.modules)
vector_add(x, x, np.zeros_like(x))
gemv(x[:256], w, np.ones((256, 2), np.float32), np.zeros(256, np.float32))
print(sorted(set(sys.modules) - before))
"""


def _fresh_python(script: str, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`script` run by a new interpreter (nothing imported yet), with a cache of its own."""
    environment = {**os.environ, "LPIR_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


@pytest.mark.parametrize("target", ["cpu", "interp", "threads"])
def test_a_first_call_imports_nothing(target: str, tmp_path: Path) -> None:
    """lpir.compile imports what the target's calls need: a thread's first call imports no
    module, so a fork while it runs finds no import lock held (the passes, the LLVM backend,
    concurrent.futures' thread pool and importlib.metadata were imported by the first call)."""
    examples = str(Path(__file__).parent.parent / "examples")
    done = _fresh_python(FIRST_CALLS, tmp_path, target, examples)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


FORK_DURING_A_FIRST_CALL = """
import faulthandler, os, sys, threading, time
import numpy as np
import lpir

kernel = lpir.compile(sys.argv[1] + "/gemv_wq.lp", target="cpu", N=512, K=512)
arguments = (np.ones(512, np.float32), lpir.pack(np.full((512, 512), 3), "u4"))
arguments += (np.ones((512, 4), np.float32),)
threading.Thread(target=kernel, args=(*arguments, np.zeros(512, np.float32)), daemon=True).start()
time.sleep(0.05)  # the thread is lowering its first call
child = os.fork()
if child == 0:
    faulthandler.dump_traceback_later(60, exit=True)  # a hang prints where, and exits 1
    y = np.zeros(512, np.float32)
    kernel(*arguments, y)
    os._exit(0 if (y == 512 * (3 - 8)).all() else 3)
print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


def test_a_child_forked_while_a_thread_makes_its_first_call_runs(tmp_path: Path) -> None:
    """docs/architecture.md, Forks: compile, start a thread that calls the kernel, fork
    while that call lowers and compiles; the child calls the kernel too (it waited forever
    on an import lock the parent's thread held in 6 of 6 runs)."""
    examples = str(Path(__file__).parent.parent / "examples")
    done = _fresh_python(FORK_DURING_A_FIRST_CALL, tmp_path, examples)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", done.stderr


def _compile_and_run_new(queue, sizes) -> None:  # (in a forked child)
    ok = True
    for n in sizes:  # sizes no process compiled before: LLVM and lpir's caches both work
        x = np.ones(n, np.float32)
        y = np.zeros_like(x)
        lpir.compile(DOUBLE, target="cpu", N=n)(x, y)
        ok = ok and bool((y == 2).all())
    queue.put(ok)


@pytest.mark.parametrize("target", ["cpu", "cuda-host"])
def test_a_child_forked_while_another_thread_compiles_and_runs_works(target: str) -> None:
    """A child forked while a thread of its parent was inside LLVM, or running an emulated
    grid, inherited their locks held and waited forever (7 of 10 children, found by an
    explorer): a fork now waits for those locks, and every lpir lock is new in the child."""
    if target == "cuda-host":
        pytest.importorskip("lpir.backends.cuda.emulation")
    # Python's own hazard stays: a child forked while a thread imports a module waits for
    # that module's import lock forever. lpir imports what a target needs at the first
    # lpir.compile for it, so the parent compiles once before its thread starts (as a server
    # would); the thread's own lpir.compile calls then import nothing.
    _compile_and_run_new(multiprocessing.Queue(), [256])
    kernel = lpir.compile(DOUBLE, target=target, N=256)
    kernel(np.ones(256, np.float32), np.zeros(256, np.float32))
    stop = threading.Event()
    sizes = iter(range(3000, 10**6, 7))

    def busy() -> None:
        while not stop.is_set():
            n = next(sizes)
            compiled = kernel if target == "cuda-host" else lpir.compile(DOUBLE, N=n)
            x = np.ones(256 if target == "cuda-host" else n, np.float32)
            compiled(x, np.zeros_like(x))

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    context = multiprocessing.get_context("fork")
    try:
        for round in range(4):
            time.sleep(0.05)
            queue = context.Queue()
            child = context.Process(target=_compile_and_run_new, args=(queue, [777 + round]))
            child.start()
            child.join(timeout=120)
            hung = child.is_alive()
            if hung:
                child.kill()
            assert not hung and child.exitcode == 0 and queue.get(timeout=5), f"round {round}"
    finally:
        stop.set()
        thread.join(timeout=120)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_two_threads_call_a_synchronizing_kernel_at_once(target: str) -> None:
    kernel = lpir.compile(DOUBLE, target=target)
    x = np.ones(1024, np.float32)
    outputs = [np.zeros_like(x) for _ in range(2)]
    threads = [threading.Thread(target=kernel, args=(x, y), daemon=True) for y in outputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "the calls waited on each other"
    for y in outputs:
        np.testing.assert_array_equal(y, 2 * x)


@pytest.mark.parametrize("target", ["cpu", "interp"])
def test_first_calls_of_one_shape_at_once_build_it_once(target: str, monkeypatch) -> None:
    """Six threads make their first calls at once, two per shape: each shape is built once
    (the build is slowed so that every thread asks while it runs), and every thread's
    result is right."""
    from lpir.runtime import kernel as kernel_module

    builds: list[int] = []
    build = kernel_module.build_specialization

    def slow_build(program, definition, values, target):  # type: ignore[no-untyped-def]
        builds.append(values["N"])
        time.sleep(0.3)
        return build(program, definition, values, target)

    monkeypatch.setattr(kernel_module, "build_specialization", slow_build)
    kernel = lpir.compile(DOUBLE, target=target)
    sizes = [100, 100, 333, 333, 1000, 1000]
    start = threading.Barrier(len(sizes))
    results: dict[int, bool] = {}

    def first_call(index: int) -> None:
        x = np.arange(sizes[index], dtype=np.float32)
        y = np.zeros_like(x)
        start.wait()
        kernel(x, y)
        results[index] = bool((y == 2 * x).all())

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(len(sizes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(builds) == [100, 333, 1000]
    assert results == {index: True for index in range(len(sizes))}
    for spec in kernel.specializations.values():  # each checked with its own dtypes
        assert [check[1] for check in spec.argument_checks] == [
            arg.type.dtype for arg in spec.kernel_ir.args
        ]


def test_a_long_straight_line_kernel_lowers_in_linear_time() -> None:
    body = "".join(f"    t = t * 1.0001 + {k}.0\n" for k in range(4000))
    source = (
        "kernel chain(x: global f32[64], y: global f32[64]) blocks(1) threads(32) {\n"
        f"    t = load(x[:])\n{body}    store(y[:], t)\n}}\n"
    )
    start = time.perf_counter()
    lpir.compile(source, target="interp").specialize(None)
    assert time.perf_counter() - start < 8.0  # (9.3 s before, on a 2-core machine: ~3 s now)


@pytest.mark.parametrize("name", ["double", "max", "lpir_add"])
def test_a_kernel_named_as_a_cpp_word_runs_on_cuda_host(name: str) -> None:
    """The emulation wrapper called `double(...)`: a cast, not the kernel (found by a test)."""
    pytest.importorskip("lpir.backends.cuda.emulation")
    from lpir.backends.cuda.emulation import emulation_available

    if not emulation_available():
        pytest.skip("no host C++ compiler")
    kernel = lpir.compile(DOUBLE.replace("kernel twice", f"kernel {name}"), target="cuda-host")
    x = np.arange(128, dtype=np.float32)
    y = np.zeros_like(x)
    kernel(x, y)
    np.testing.assert_array_equal(y, 2 * x)
