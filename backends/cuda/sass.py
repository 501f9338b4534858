"""Reading the machine code (SASS) that ptxas made of a kernel, for checks that PTX cannot show.

`disassemble(cubin)` runs cuobjdump (from the CUDA toolkit, or `pip install
"cuda-toolkit[cuobjdump,nvdisasm]"`).

`undefined_address_registers(sass)` lists the memory accesses whose 64-bit address registers
nothing before them writes, in program order from the kernel's entry: on the first pass such an
access reads whatever the register held. ptxas 13.0 to 13.5 made one in a pipelined loop that
nvcc had unrolled by a count not dividing its trips (an illegal address on an H200; see
emit_control._unroll_pipelined). The check is straight-line: it knows nothing of branches, so
it is for spotting that pattern, not a data-flow analysis.

`main_loop(sass)` lists the opcodes of a kernel's longest loop: what a GEMV costs per weight.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

INSTRUCTION = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)\s*(.*?)\s*;")
BRANCH = re.compile(r"\bBRA\s+(?:`\(\.L_x_\d+\)|0x([0-9a-f]+))")


def find_cuobjdump() -> str | None:
    """cuobjdump on PATH, or the one a `cuda-toolkit` wheel put in this Python's site-packages;
    None unless the nvdisasm it runs for `-sass` is beside it or on PATH."""
    site = Path(sysconfig.get_paths()["purelib"]) / "nvidia"
    candidates: list[str | Path | None] = [shutil.which("cuobjdump")]
    candidates += sorted(site.glob("cu*/bin/cuobjdump"), reverse=True) if site.exists() else []
    for candidate in (c for c in candidates if c is not None):
        if (Path(candidate).parent / "nvdisasm").exists() or shutil.which("nvdisasm"):
            return str(candidate)
    return None


def disassemble(cubin: bytes, cuobjdump: str | None = None) -> str:
    """The SASS text of a cubin."""
    tool = cuobjdump or find_cuobjdump()
    if tool is None:
        raise FileNotFoundError("cuobjdump is not installed")
    with tempfile.TemporaryDirectory(prefix="lpir-sass-") as directory:
        path = Path(directory) / "kernel.cubin"
        path.write_bytes(cubin)
        return subprocess.run(
            [tool, "-sass", str(path)], capture_output=True, text=True, check=True
        ).stdout


def _written(opcode: str, operands: str) -> range:
    """The registers an instruction writes (its first operand, 1, 2 or 4 wide)."""
    first = re.match(r"R(\d+)\b", operands)
    if first is None:
        return range(0)
    if ".128" in opcode or opcode.startswith(("LDSM", "HMMA")):
        wide = 4
    elif ".64" in opcode or ".WIDE" in opcode or opcode.startswith("CS2R"):
        wide = 2
    else:
        wide = 1
    return range(int(first.group(1)), int(first.group(1)) + wide)


def undefined_address_registers(sass: str) -> list[str]:
    """`pc opcode operands` of each access through a register pair not yet written."""
    written: set[int] = set()
    found = []
    for line in sass.splitlines():
        match = INSTRUCTION.match(line)
        if not match:
            continue
        pc, opcode, operands = match.groups()
        for register in re.findall(r"\[R(\d+)\.64", operands):
            if not {int(register), int(register) + 1} <= written:
                found.append(f"{pc} {opcode} {operands}")
        written.update(_written(opcode, operands))
    return found


def main_loop(sass: str) -> list[str]:
    """Opcodes of the longest loop: the instructions from a backward branch's target to it."""
    instructions = []  # (address, opcode, branch target or None)
    for line in sass.splitlines():
        match = INSTRUCTION.match(line)
        if not match:
            continue
        branch = BRANCH.search(line)
        target = int(branch.group(1), 16) if branch and branch.group(1) else None
        instructions.append((int(match.group(1), 16), match.group(2), target))
    longest: list[str] = []
    for address, _, target in instructions:
        if target is not None and target < address:
            body = [op for at, op, _ in instructions if target <= at <= address]
            longest = body if len(body) > len(longest) else longest
    return longest
