"""TensorRT's ``trtexec``: the pinned command we publish numbers with, and a
parser of its log's performance summary."""
import os
import re
import shlex
from typing import Dict, List, Tuple, Union

from ..errors import UnreadableLogError


#: Flags every published Jetson/TensorRT number uses: fp16, one fixed shape, CUDA
#: graph launch, spin-wait synchronisation, a separate profiling pass (per-layer
#: profiling would distort the timings), no host<->device copies in the timed loop.
PINNED_FLAGS = ['--fp16', '--useCudaGraph', '--useSpinWait', '--separateProfileRun',
                '--noDataTransfers', '--warmUp=500', '--duration=10', '--iterations=200']
POWER_NOTES = ('Jetson: run `sudo nvpmodel -m 0` (MAXN) and `sudo jetson_clocks` first; '
               'numbers in other power modes are not comparable.')

_STATS = re.compile(r'(min|max|mean|median|percentile\((\d+)%\))\s*=\s*([0-9.eE+-]+)\s*ms')


def build_command(onnx: str, engine: str, batch: int, height: int, width: int,
                  trtexec: str = 'trtexec') -> List[str]:
    """The trtexec command for ``onnx`` at one input shape. A file exported at a fixed
    size carries its shape, and trtexec refuses ``--shapes`` for it ("Static model
    does not take explicit shapes"): the shape asked for must be the file's. A
    dynamic one gets ``--shapes``, where its fixed axes (a whole detector's batch
    of 1) must be what is asked for."""
    name, dims = onnx_input(onnx)
    wanted = [batch, 3, height, width]
    fixed = [isinstance(d, int) and d > 0 for d in dims]
    if all(fixed):
        if dims != wanted:
            raise ValueError(f'{onnx} was exported at the fixed input {_x(dims)}, not '
                             f'{_x(wanted)}: ask for that batch and shape, or export it '
                             'again at this one (or with --dynamic)')
        shapes = []
    elif any(f and d != w for f, d, w in zip(fixed, dims, wanted)):
        raise ValueError(f'{onnx} takes inputs {_x(dims)} (named axes free), not '
                         f'{_x(wanted)}: ask for a batch and shape that fit')
    else:
        shapes = [f'--shapes={name}:{_x(wanted)}']
    return [trtexec, f'--onnx={onnx}', f'--saveEngine={engine}'] + shapes + PINNED_FLAGS


def onnx_input(path: str) -> Tuple[str, List[Union[int, str]]]:
    """Name and dimensions of the model's first input (a dynamic axis by its name)."""
    try:
        import onnx
    except ImportError:
        raise ValueError('reading the ONNX input shape needs the onnx package: '
                         'pip install onnx') from None
    if not os.path.isfile(path):
        raise ValueError(f'{path}: no such ONNX file (export it with tools/export_onnx.py)')
    first = onnx.load(path, load_external_data=False).graph.input[0]
    return first.name, [d.dim_param or d.dim_value for d in first.type.tensor_type.shape.dim]


def _x(dims) -> str:
    return 'x'.join(str(d) for d in dims)


def _stats(line: str) -> Dict[str, float]:
    found = {}
    for name, percent, value in _STATS.findall(line):
        key = f'p{percent}_ms' if percent else f'{name}_ms'
        found[key] = float(value)
    return found


def parse_trtexec(text: str) -> Dict[str, object]:
    """Performance summary of a trtexec log.

    Latency is the GPU compute time (what a deployed engine costs); the
    end-to-end latency (with enqueue/copies) is kept alongside.
    """
    summary: Dict[str, object] = {}
    for line in text.splitlines():
        body = re.sub(r'^\[[^\]]*\]\s*\[\w\]\s*', '', line).strip()
        if body.startswith('Throughput:'):
            summary['throughput_qps'] = float(re.search(r'([0-9.eE+-]+)\s*qps', body).group(1))
        elif body.startswith('GPU Compute Time:'):
            summary['gpu_compute'] = _stats(body)
        elif body.startswith('Latency:'):
            summary['end_to_end'] = _stats(body)
        elif body.startswith('TensorRT version:'):
            summary['tensorrt'] = body.split(':', 1)[1].strip()
        elif body.startswith('Selected Device:'):
            summary['device_name'] = body.split(':', 1)[1].strip()
        elif body.startswith('&&&& RUNNING') and '#' in body:
            summary['command'] = body.split('#', 1)[1].strip()
    if 'gpu_compute' not in summary or 'throughput_qps' not in summary:
        raise UnreadableLogError('no "=== Performance summary ===" with Throughput and GPU '
                                 'Compute Time found: is this the log of a finished trtexec '
                                 'run?')
    return summary


def quote(command: List[str]) -> str:
    return ' '.join(shlex.quote(c) for c in command)
