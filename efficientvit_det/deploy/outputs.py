"""A model's outputs as flat lists of arrays, and how far two sets of them are apart:
what every check of an export or a mode against eager PyTorch compares."""
from typing import Dict, List

import numpy as np
import torch


def flatten_outputs(outputs) -> List[object]:
    """Nested lists/tuples of outputs (detectors nest them) as one flat list."""
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in flatten_outputs(item)]
    return [outputs]


def as_numpy(value) -> np.ndarray:
    """fp32 host array of a torch tensor, numpy array or ONNX Runtime value."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    if hasattr(value, 'numpy'):  # onnxruntime.OrtValue (possibly on the GPU)
        value = value.numpy()
    return np.asarray(value, dtype=np.float32)


def output_errors(reference: List[object], outputs: List[object]) -> List[Dict[str, object]]:
    """Per output: max |difference| (``abs_err``) and that over the largest
    |reference| value (``rel_err``), or ``error`` saying why they cannot be
    compared (count, shape, inf/NaN as after an fp16 overflow)."""
    if len(reference) != len(outputs):
        return [dict(output=None, error=f'{len(outputs)} outputs vs {len(reference)}')]
    reports = []
    for i, (expected, got) in enumerate(zip(reference, outputs)):
        expected, got = as_numpy(expected), as_numpy(got)
        if expected.shape != got.shape:
            reports.append(dict(output=i, error=f'shape {list(got.shape)} vs '
                                                f'{list(expected.shape)}'))
        elif not np.isfinite(got).all():
            reports.append(dict(output=i, error='inf/NaN values'))
        else:
            abs_err = float(np.abs(expected - got).max(initial=0.0))
            scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
            reports.append(dict(output=i, abs_err=abs_err, rel_err=abs_err / scale))
    return reports


def max_relative_error(reference: List[object], outputs: List[object]) -> float:
    """The worst ``rel_err`` of :func:`output_errors`; infinity when any output
    cannot be compared."""
    reports = output_errors(reference, outputs)
    if any('error' in r for r in reports):
        return float('inf')
    return max((r['rel_err'] for r in reports), default=0.0)
