"""An input size refused before anything of that size is allocated when one tensor
the model would make at it is larger than the memory the device has free: the model
runs on PyTorch's ``meta`` device (shapes, no data) and the largest tensor any
operation returns is the bound. It is a lower bound (tensors live side by side),
so what it refuses cannot fit; a size it lets through may still not."""
import copy
import os
from typing import Optional, Tuple

import torch
from torch.overrides import TorchFunctionMode

from ..errors import InputTooLargeError

GIB = 2 ** 30


class _LargestTensor(TorchFunctionMode):
    """Records the size of the largest tensor a torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(item, torch.Tensor):  # its storage: a view or expand adds none
                self.largest = max(self.largest, item.untyped_storage().nbytes())
        return out


def largest_tensor_bytes(model: torch.nn.Module, shape: Tuple[int, ...],
                         dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the largest tensor ``model`` makes from an input of ``shape``, found
    without allocating any. Operations with no meta kernel (mmcv's RoIAlign and NMS)
    end the run: what ran before them (backbone and neck, the large maps) counts."""
    meta_model = copy.deepcopy(model).to('meta')
    mode = _LargestTensor()
    with torch.no_grad(), mode:
        try:
            meta_model(torch.empty(shape, dtype=dtype, device='meta'))
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            pass  # an op without a meta kernel, or one reading values: what ran counts
    return max(mode.largest, torch.Size(shape).numel() * dtype.itemsize)


def available_bytes(device: str = 'cpu') -> Optional[int]:
    """Memory the device has free now (Linux's MemAvailable on the CPU); None where
    it cannot be read."""
    if device.startswith('cuda'):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(model: torch.nn.Module, shape: Tuple[int, ...], what: str,
                         device: str = 'cpu', dtype: torch.dtype = torch.float32) -> None:
    """Refuse ``shape`` for ``model`` (named ``what``) in one line when a single
    tensor of its run would not fit in the device's free memory."""
    free = available_bytes(device)
    if free is None:
        return
    needed = largest_tensor_bytes(model, shape, dtype)
    if needed > free:
        raise InputTooLargeError(
            f'{what} at input {"x".join(map(str, shape))} makes a tensor of '
            f'{needed / GIB:.1f} GiB, more than the {free / GIB:.1f} GiB free on {device}: '
            'choose a smaller --shape (or --batch)')
