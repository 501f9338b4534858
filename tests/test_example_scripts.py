"""The example scripts' driver (`examples/common.py`): it reports an `LpirError` as `lpir`
does (the message and hint, no traceback, exit status 1).

Before, `python examples/vector_add.py --target cuda` without a GPU ended in a Python
traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lpir.backends.cuda.device import gpu_available

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
