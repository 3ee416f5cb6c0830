"""ONNX export of backbones (and whole models where mmdet allows) with validation."""
from typing import Dict, List, Optional, Sequence

import torch

from .measure import flatten_outputs, output_errors


class ExportUnsupported(RuntimeError):
    """The model has parts that cannot be written as ONNX (the message says which)."""


class _AsTuple(torch.nn.Module):
    """Exporters want a flat tuple of tensors out (detectors return nested lists)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(flatten_outputs(self.model(x)))


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str,
                dynamic: bool = False, opset: int = 17) -> List[str]:
    """Write ``model`` to ``path``; returns the output names.

    ``dynamic`` marks batch, height and width as dynamic axes. A model that knows
    it cannot be exported says why in ``onnx_unsupported``; nothing is written then.
    """
    reason = getattr(model, 'onnx_unsupported', None)
    if reason:
        raise ExportUnsupported(reason)
    model = _AsTuple(model.eval())
    with torch.no_grad():
        outputs = model(example)
    names = [f'feat{i}' for i in range(len(outputs))]
    axes = None
    if dynamic:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} for n in names})
    torch.onnx.export(model, (example,), path, input_names=['input'], output_names=names,
                      dynamic_axes=axes, opset_version=opset, dynamo=False)
    return names


def compare_with_onnxruntime(model: torch.nn.Module, path: str,
                             inputs: Sequence[torch.Tensor]) -> List[Dict[str, object]]:
    """Max abs / relative error of every output, for each input, vs PyTorch."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    wrapped = _AsTuple(model.eval())
    reports = []
    for x in inputs:
        with torch.no_grad():
            expected = wrapped(x)
        for report in output_errors(list(expected), session.run(None, {name: x.numpy()})):
            reports.append(dict(report, shape=list(x.shape),
                                ok='error' not in report and report['rel_err'] < 1e-4))
    return reports


def validate(model, path: str, example: torch.Tensor, dynamic: bool,
             other: Optional[torch.Tensor] = None) -> List[Dict[str, object]]:
    """Compare at the export shape, and (dynamic export) at a second shape too."""
    inputs = [example] + ([other] if dynamic and other is not None else [])
    return compare_with_onnxruntime(model, path, inputs)
