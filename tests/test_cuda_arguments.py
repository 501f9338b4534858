"""Argument checks for GPU arrays, without a GPU: a stand-in object exposing
`__cuda_array_interface__` (as torch and cupy tensors on the GPU do) goes through the same
deduction and checks as a real one, which raise before anything is compiled for or sent to a
device. Launches with real device arrays are in test_cuda_launch.py (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.arrays import DevicePacked, DeviceView

import lpir
from lpir.errors import ArgumentError
from lpir.ir.types import GlobalType
from lpir.runtime.specialization import Specialization

SCALE = """
kernel scale[N, T = f32, BLOCK = 64](x: global T[N], y: global T[N], alpha: f32)
    blocks(cdiv(N, BLOCK)) threads(32) {
    i = block.x * BLOCK
    store(y[i :+ BLOCK], cast<T>(cast<f32>(load(x[i :+ BLOCK])) * alpha))
}
"""

PACKED = """
kernel widen[N, WT = u4](w: global WT[N], y: global f32[N]) blocks(cdiv(N, 64)) threads(32) {
    i = block.x * 64
    store(y[i :+ 64], cast<f32>(load(w[i :+ 64])))
}
"""


class FakeDeviceArray:
    """What lpir sees of a GPU tensor: shape, element type, pointer, strides."""

    def __init__(self, shape, typestr="<f4", pointer=1 << 20, strides=None):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape),
            "typestr": typestr,
            "data": (pointer, False),
            "strides": strides,
            "version": 3,
        }


@pytest.fixture(autouse=True)
def launches(monkeypatch):
    """Calls that pass every check are recorded here instead of launched: the stand-in arrays
    point nowhere, and on a machine with a GPU a launch would read through them."""
    recorded = []
    monkeypatch.setattr(Specialization, "run", lambda self, arguments: recorded.append(arguments))
    return recorded


def located(error: ArgumentError, declaration: str) -> None:
    """The error points at the argument's declaration in the kernel source."""
    assert error.location is not None
    where = error.location
    assert where.source_line[where.column - 1 :].startswith(declaration)


def test_gpu_array_on_a_host_target_is_refused():
    kernel = lpir.compile(SCALE, target="cpu")
    with pytest.raises(ArgumentError, match="x is a GPU array, but target 'cpu'") as caught:
        kernel(FakeDeviceArray((256,)), np.zeros(256, np.float32), 2.0)
    located(caught.value, "x: global T[N]")
    assert "tensor.cpu().numpy()" in caught.value.hint


def test_sizes_and_dtypes_are_deduced_from_device_arrays(launches):
    kernel = lpir.compile(SCALE, target="cuda")
    x, y = FakeDeviceArray((300,), "<f2"), FakeDeviceArray((300,), "<f2")
    kernel(x, y, 1.0)
    assert kernel.last.params["T"] == lpir.dtype("f16") and kernel.last.params["N"] == 300
    # device arrays go to the launch as the views kernel(...) checked (run() reads only their
    # pointers and devices)
    [(x_view, y_view, alpha)] = launches
    assert isinstance(x_view, DeviceView) and alpha == 1.0
    assert x_view.pointer == y_view.pointer == 1 << 20
    assert x_view.checked_as == y_view.checked_as == GlobalType(lpir.dtype("f16"), (300,))
    message = "N is 300 from the shape of argument x but 256 from the shape of argument y"
    with pytest.raises(ArgumentError, match=message):
        kernel(x, FakeDeviceArray((256,), "<f2"), 1.0)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (FakeDeviceArray((256,), "<f8"), "f32 from the caller but f64 from argument x"),
        (FakeDeviceArray((256,), "<i4"), "i32 from argument x"),
        (FakeDeviceArray((256,), pointer=(1 << 20) + 4), "16-byte boundary"),
        (FakeDeviceArray((16, 16), strides=(4, 64)), "rank|shape"),
    ],
)
def test_device_array_checks_are_located(bad, message):
    kernel = lpir.compile(SCALE, target="cuda", T="f32", N=256)
    with pytest.raises(ArgumentError, match=message) as caught:
        kernel(bad, FakeDeviceArray((256,)), 1.0)
    assert caught.value.location is not None


def test_non_contiguous_device_array():
    kernel = lpir.compile(SCALE, target="cuda")
    transposed = FakeDeviceArray((256,), strides=(8,))
    with pytest.raises(ArgumentError, match="not C-contiguous") as caught:
        kernel(transposed, FakeDeviceArray((256,)), 1.0)
    located(caught.value, "x: global T[N]")


def test_packed_device_arrays(launches):
    kernel = lpir.compile(PACKED, target="cuda")
    storage = FakeDeviceArray((64,), "|u1")  # 128 u4 values
    with pytest.raises(ArgumentError, match="holds packed u4 values") as caught:
        kernel(DevicePacked(FakeDeviceArray((60,), "|u1"), "u4", (128,)), FakeDeviceArray((128,)))
    located(caught.value, "w: global WT[N]")
    assert "lpir.DevicePacked(" in caught.value.hint
    pinned = lpir.compile(PACKED, target="cuda", WT="u4")
    with pytest.raises(ArgumentError, match="u4 from the caller but u8 from argument w"):
        pinned(FakeDeviceArray((64,), "|u1"), FakeDeviceArray((128,)))  # bytes, no dtype
    kernel(DevicePacked(storage, "u4", (128,)), FakeDeviceArray((128,)))
    assert kernel.last.params["WT"] == lpir.dtype("u4") and len(launches) == 1
    assert len(kernel.specializations) == 1  # the refused calls deduced the same one


class Tensor:
    """Stands for a torch tensor: the attributes lpir reads of one (torch assembles
    `__cuda_array_interface__` in Python on every access, so lpir does not use it)."""

    __module__ = "torch"

    def __init__(self, shape, dtype="float32", pointer=1 << 20, contiguous=True, cuda=True):
        self.shape, self.dtype, self.is_cuda = tuple(shape), f"torch.{dtype}", cuda
        self.pointer, self.contiguous = pointer, contiguous

    def data_ptr(self) -> int:
        return self.pointer

    def element_size(self) -> int:
        return {"float32": 4, "float16": 2, "bfloat16": 2, "uint8": 1}[self.dtype[6:]]

    def is_contiguous(self) -> bool:
        return self.contiguous

    def get_device(self) -> int:
        return 0


def test_torch_tensors_are_read_through_their_attributes(launches):
    from lpir.runtime.arguments import is_device_array

    kernel = lpir.compile(SCALE, target="cuda")
    x, y = Tensor((300,), "bfloat16"), Tensor((300,), "bfloat16")
    kernel(x, y, 1.0)
    assert kernel.last.params["T"] == lpir.dtype("bf16") and kernel.last.params["N"] == 300
    pinned = lpir.compile(SCALE, target="cuda", T="f32", N=256)
    for bad, message in [
        (Tensor((256,), "float16"), "f32 from the caller but f16 from argument x"),
        (Tensor((256,), pointer=(1 << 20) + 4), "16-byte boundary"),
        (Tensor((256,), contiguous=False), "not C-contiguous"),
    ]:
        with pytest.raises(ArgumentError, match=message):
            pinned(bad, Tensor((256,)), 1.0)
    packed = lpir.compile(PACKED, target="cuda")
    packed(DevicePacked(Tensor((64,), "uint8"), "u4", (128,)), Tensor((128,)))
    assert packed.last.params["WT"] == lpir.dtype("u4")
    assert not is_device_array(Tensor((4,), cuda=False))  # a host tensor takes the host path


def test_the_launch_checks_only_the_device_of_views_kernel_checked(monkeypatch):
    """`run()` trusts a view checked against its own argument type for everything but the GPU
    it lives on; any other view (or array) is checked in full."""
    import types

    from lpir.backends.cuda import device
    from lpir.backends.cuda.kernel import CompiledKernel

    launched = []
    monkeypatch.setattr(
        CompiledKernel,
        "loaded",
        lambda self: types.SimpleNamespace(launch=lambda params, stream: launched.append(params)),
    )
    monkeypatch.setattr(device, "current_device", lambda: types.SimpleNamespace(device_id=0))
    spec = lpir.compile(SCALE, target="cuda", T="f32", N=256).specialize(None)
    compiled = CompiledKernel(spec.module, spec.params)
    x_type, y_type = (arg.type for arg in compiled.kernel.args[:2])

    def view(shape, device_id=0, checked_as=None):
        return DeviceView(1 << 20, shape, np.dtype("float32"), 4, True, device_id, None, checked_as)

    compiled.run([view((256,), checked_as=x_type), view((256,), checked_as=y_type), 1.0])
    assert [int(p) for p in launched[0][:2]] == [1 << 20, 1 << 20]
    with pytest.raises(ArgumentError, match="lives on device 1"):
        compiled.run([view((256,), 1, x_type), view((256,), checked_as=y_type), 1.0])
    # checked against another argument's type (or not at all): checked again, in full
    with pytest.raises(ArgumentError, match="shape"):
        compiled.run(
            [view((300,), checked_as=GlobalType(lpir.dtype("f32"), (300,))), view((256,)), 1.0]
        )
