"""ONNX export of backbones and whole models, with validation against PyTorch."""
import os
from typing import Dict, List, Optional, Sequence

import torch

from ..errors import ExportMismatch, ExportUnsupported
from ..fileio import atomic_path
from ..models.blocks import WindowAttention
from .detector_graph import (DetectorGraph, as_detections, detections_agree, format_match,
                             match_detections, reference_detections)
from .outputs import flatten_outputs, output_errors


class _AsTuple(torch.nn.Module):
    """Exporters want a flat tuple of tensors out (detectors return nested lists).

    Build it as ``_AsTuple(model).eval()``: the exporter leaves the wrapper in the
    mode it found it in, recursively, and a wrapper left training would switch the
    model's BatchNorms to updating their statistics on the next call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(flatten_outputs(self.model(x)))


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str,
                dynamic: bool = False, opset: int = 17,
                output_names: Optional[Sequence[str]] = None) -> List[str]:
    """Write ``model`` to ``path``; returns the output names (``feat0``, ... unless
    given).

    ``dynamic`` marks batch, height and width as dynamic axes; a model with named
    outputs (a whole detector, :class:`DetectorGraph`: one image, detections out)
    gets height and width, and needs opset 16 or later (aligned ``RoiAlign``);
    nothing is written when that cannot be.
    """
    if output_names and opset < 16:
        raise ExportUnsupported(f'opset {opset} has no aligned RoiAlign; a whole detector '
                                'needs --opset 16 or later')
    model = _AsTuple(model).eval()
    with torch.no_grad():
        outputs = model(example)
    names = list(output_names or [f'feat{i}' for i in range(len(outputs))])
    axes = None
    if dynamic and output_names:  # the detections' count is the data's anyway
        axes = {'input': {2: 'height', 3: 'width'}}
    elif dynamic:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} for n in names})
    torch.onnx.export(model, (example,), path, input_names=['input'], output_names=names,
                      dynamic_axes=axes, opset_version=opset, dynamo=False)
    return names


def export_checked(target, inputs: Sequence[torch.Tensor], out: str, dynamic: bool = False,
                   opset: int = 17, trained: bool = False) -> List[Dict[str, object]]:
    """Export ``target``'s model (a :class:`~.targets.Target`) to ``out`` from the
    first of ``inputs`` and check ONNX Runtime against PyTorch on each of them; the
    reports, one per input and output. ``out`` is replaced only by an export that
    matches: one that does not is kept beside it as ``OUT.invalid.onnx`` for
    inspection and :class:`ExportMismatch` (holding the reports) says so; nothing is
    half-written either way."""
    invalid = (out[:-5] if out.endswith('.onnx') else out) + '.invalid.onnx'
    with atomic_path(out) as staged:
        export_onnx(target.model, inputs[0], staged, dynamic=dynamic, opset=opset,
                    output_names=target.output_names)
        reports = target.validate_export(staged, inputs, trained=trained)
        if not all(report['ok'] for report in reports):
            os.replace(staged, invalid)
            message = f'the export does not match PyTorch: kept as {invalid}; {out} left as it was'
            limit = dynamic_size_limit(target.model) if dynamic else None
            if limit:
                message += ('; a dynamic export holds only where no size is written into '
                            f'it: {limit}')
            raise ExportMismatch(message, reports)
    return reports


def compare_with_onnxruntime(model: torch.nn.Module, path: str,
                             inputs: Sequence[torch.Tensor]) -> List[Dict[str, object]]:
    """Max abs / relative error of every output, for each input, vs PyTorch."""
    session = _session(path)
    wrapped = _AsTuple(model).eval()
    reports = []
    for x in inputs:
        got, failure = _run(session, x)
        if failure:
            reports.append(dict(output=None, error=failure, shape=list(x.shape), ok=False))
            continue
        with torch.no_grad():
            expected = wrapped(x)
        for report in output_errors(list(expected), got):
            reports.append(dict(report, shape=list(x.shape),
                                ok='error' not in report and report['rel_err'] < 1e-4))
    return reports


def _session(path: str):
    import onnxruntime as ort
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _run(session, x: torch.Tensor):
    """(ONNX Runtime's outputs, None), or (None, why it could not compute them): a
    graph that holds at the export size may not at another (a shape written into it
    as a constant), and that is a mismatch to report, not a crash."""
    feed = {session.get_inputs()[0].name: x.numpy()}
    try:
        return session.run(None, feed), None
    except Exception as err:  # onnxruntime's Fail, InvalidArgument, ... (not RuntimeError)
        return None, f'ONNX Runtime failed: {str(err).splitlines()[0]}'


def compare_detections_with_onnxruntime(graph: DetectorGraph, path: str,
                                        images: Sequence[torch.Tensor],
                                        with_mmdet: bool) -> List[Dict[str, object]]:
    """ONNX Runtime's detections on each image paired (:func:`match_detections`) with
    the PyTorch graph's and, ``with_mmdet``, with ``model.predict``'s, each judged by
    :data:`AGREEMENT`. Random weights give many near-equal scores whose ties mmdet
    breaks its own way, so they are compared with the graph only, which ranks
    exactly as the export does (tests show the graph equals mmdet on trained ones)."""
    session = _session(path)
    reports = []
    for image in images:
        outputs, failure = _run(session, image)
        if failure:
            reports.append(dict(against='PyTorch', error=failure, shape=list(image.shape),
                                ok=False))
            continue
        got = as_detections(outputs)
        with torch.no_grad():
            references = [('PyTorch', as_detections(graph.eval()(image)))]
        if with_mmdet:
            references.append(("mmdet's predict", reference_detections(graph.model, image)))
        for against, expected in references:
            report = match_detections(expected, got, tuple(image.shape[-2:]))
            reports.append(dict(report, against=against, shape=list(image.shape),
                                ok=detections_agree(report)))
    return reports


def dynamic_size_limit(model: torch.nn.Module) -> Optional[str]:
    """Why a dynamic export of ``model`` may hold over some sizes only, or None.
    Window attention takes a map that fits in one window whole, with the bias
    table of that map's size (as the reference does), which a trace writes into
    the graph; maps larger than the window are padded to it, at any size."""
    windows = sorted({m.window_size for m in model.modules() if isinstance(m, WindowAttention)})
    if not windows:
        return None
    return ('its window attention (windows of ' + ', '.join(map(str, windows)) + ') takes '
            'a map that fits in one window whole, at that map\'s size: export and run it at '
            'sizes where every stage\'s map is larger than its window (e.g. 512x512)')


def describe(report: Dict[str, object]) -> str:
    """One line per report of :func:`validate`."""
    verdict = 'ok' if report['ok'] else 'MISMATCH'
    if 'against' in report:  # a whole detector's detections ("here": ONNX Runtime's)
        return (f"input {report['shape']}, ONNX Runtime vs {report['against']}: {verdict} "
                f"({report.get('error') or format_match(report)})")
    detail = report.get('error') or (f"max abs {report['abs_err']:.2e}, "
                                     f"rel {report['rel_err']:.2e}")
    output = '' if report['output'] is None else f" output {report['output']}"
    return f"input {report['shape']}{output}: {verdict} ({detail})"
