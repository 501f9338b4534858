"""The example scripts' driver (`examples/common.py`): it reports an `LpirError` as `lpir`
does (the message and hint, no traceback, exit status 1), and it takes the targets `lpir run`
and `lpir.compile` take, which README lists.

Before, `python examples/vector_add.py --target cuda` without a GPU ended in a Python
traceback.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.device import gpu_available

import lpir
import lpir.runtime.kernel
from lpir.cli import main as cli_main
from lpir.runtime.specialization import PIPELINE_OF_TARGET
from lpir.targets import RUN_TARGETS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )


def test_an_example_reports_a_mistake_without_a_traceback(tmp_path):
    """A case the kernel refuses (an integer parameter given a dtype) is reported as such."""
    script = tmp_path / "bad_case.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "import vector_add\n"
        "from common import main\n"
        "sys.exit(main(vector_add.KERNEL, vector_add, [{'N': 'f32'}], ['--target', 'interp']))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: parameter N of kernel vector_add takes an integer" in result.stderr
    assert "\nhint: " in result.stderr


@pytest.mark.skipif(gpu_available(), reason="checks the message given where there is no GPU")
def test_an_example_on_cuda_without_a_gpu_says_so_as_lpir_run_does():
    result = run_example("vector_add", "--target", "cuda")
    assert result.returncode == 1
    assert result.stderr == (
        "error: no CUDA GPU is available\nhint: run on a machine with an NVIDIA GPU\n"
    )


def load_common():
    spec = importlib.util.spec_from_file_location("example_common", EXAMPLES / "common.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_the_example_scripts_and_lpir_run_take_every_target(target, tmp_path, capsys):
    """One list of targets (`RUN_TARGETS`): `threads-cuda` was missing from `lpir run` and
    `cuda-host` from the example scripts."""
    vector_add = load_example("vector_add")
    argv = ["--target", target]
    assert load_common().main(vector_add.KERNEL, vector_add, [{"N": 1000}], argv) == 0
    assert f"ok   vector_add[T=f32, N=1000, BLOCK=1024] on {target}" in capsys.readouterr().out
    assert cli_main(["run", str(vector_add.KERNEL), "-D", "N=1000", *argv, "--check"]) == 0
    assert f"on {target}\n" in capsys.readouterr().out


def test_every_target_is_documented_once_in_the_readme():
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"(?m)^\| `([\w-]+)` \| (.+) \|$", readme.split("## Examples")[0])
    assert [name for name, _ in rows] == list(RUN_TARGETS)
    assert list(lpir.runtime.kernel.TARGETS) == list(RUN_TARGETS)
    assert set(PIPELINE_OF_TARGET) == set(RUN_TARGETS)
    with pytest.raises(lpir.LpirError) as error:
        lpir.compile(EXAMPLES / "vector_add.lp", target="gpu")
    assert error.value.hint == "use one of " + ", ".join(RUN_TARGETS)
