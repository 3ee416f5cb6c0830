"""The latency results' schema, how a row is printed, and the JSON/CSV files
(``efficientvit_det.latency/1``: the model index, the benchmarks and the Jetson
parser all read and write this one format)."""
import csv
import json
import time
from typing import Dict, Optional

import torch

from ..errors import ResultsFileError
from ..fileio import atomic_path
from .measure import machine_info

SCHEMA = 'efficientvit_det.latency/1'


ROW_FIELDS = ['target', 'kind', 'mode', 'precision', 'device', 'batch', 'height', 'width',
              'threads', 'status', 'median_ms', 'ci95_low_ms', 'ci95_high_ms', 'unstable',
              'p90_ms', 'p99_ms', 'mean_ms', 'runs',
              'throughput_img_s', 'peak_mem_mb', 'params_m', 'gmacs', 'gflops_per_s',
              'matmul_fraction', 'max_rel_err', 'backbone_share', 'reason']


HEADER = (f"{'target':<22} {'shape':>9} {'b':>3} {'mode':<13} {'prec':<4} {'median':>8} "
          f"{'p90':>8} {'p99':>8} {'img/s':>8} {'mem MB':>7}")


def _number(value, width: int, digits: int) -> str:
    """A right-aligned number, or a dash for a figure the source does not give
    (trtexec reports no memory, older trtexec no p90)."""
    return f'{value:{width}.{digits}f}' if value is not None else f'{"—":>{width}}'


def format_row(row) -> str:
    shape = f"{row['height']}x{row['width']}"
    head = (f"{row['target']:<22} {shape:>9} {row['batch']:>3} {row['mode']:<13} "
            f"{row['precision']:<4} ")
    if row['status'] == 'skipped':
        return head + f"skipped: {row['reason']}"
    return (head + ' '.join([_number(row['median_ms'], 8, 2), _number(row['p90_ms'], 8, 2),
                             _number(row['p99_ms'], 8, 2),
                             _number(row['throughput_img_s'], 8, 1),
                             _number(row['peak_mem_mb'], 7, 0)])
            + (f"  MISMATCH: {row['reason']}" if row['status'] == 'mismatch' else '')
            + ('  UNSTABLE: 95% interval of the median '
               f"{row['ci95_low_ms']:.2f}-{row['ci95_high_ms']:.2f} ms"
               if row.get('unstable') else ''))


def format_stages(row) -> str:
    total = sum(row['stages_ms'].values())
    return '\n'.join(f"    {name:<18} {ms:>9.2f} ms {100 * ms / total:>5.1f}%"
                     for name, ms in row['stages_ms'].items()) + (
        f"\n    {'sum of stages':<18} {total:>9.2f} ms (the whole, timed as one: "
        f"{row['median_ms']:.2f} ms)")


def versions() -> Dict[str, str]:
    found = {'torch': torch.__version__}
    for module in ('timm', 'onnx', 'onnxruntime', 'tensorrt', 'mmcv', 'mmdet', 'mmseg'):
        try:
            found[module] = __import__(module).__version__
        except Exception:  # not installed (or broken): simply not reported
            pass
    return found


#: what a reader of the results sorts rows by (older files may lack other fields)
SORTING_FIELDS = ('target', 'mode', 'status')


def read_results(path: str) -> dict:
    """A results file of :func:`write_results` (or the Jetson parser), whole. Any
    other file is named in one line here rather than failing later on a missing key."""
    try:
        with open(path) as f:
            document = json.load(f)
        incomplete = sum(not set(SORTING_FIELDS) <= set(row) for row in document['results'])
        problem = f'{incomplete} rows without {", ".join(SORTING_FIELDS)}' if incomplete else ''
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = repr(err)
    if problem:
        raise ResultsFileError(f'{path}: not a results JSON of tools/benchmark_latency.py '
                               f'({problem}); pass its --out OUT.json')
    return document


def write_results(rows, out: str, device: str, command: str, extra: Optional[dict] = None):
    """``out`` without extension (or ending in .json): writes .json and .csv."""
    base = result_base(out)
    document = dict(schema=SCHEMA, command=command, time=time.strftime('%Y-%m-%d %H:%M:%S'),
                    machine=machine_info(device), versions=versions(), results=rows)
    document.update(extra or {})
    with atomic_path(base + '.json') as partial, open(partial, 'w') as f:
        json.dump(document, f, indent=2)
    with atomic_path(base + '.csv') as partial, open(partial, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS + ['best'], extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    return base + '.json', base + '.csv'


def result_base(out: str) -> str:
    return out[:-5] if out.endswith('.json') else out


def to_row(summary: Dict[str, object], target: str, batch: int, height: int, width: int,
           device: Optional[str] = None) -> Dict[str, object]:
    """One row of the ``efficientvit_det.latency/1`` schema; what trtexec does not
    measure (memory, FLOPs, the output check) stays None."""
    gpu = summary['gpu_compute']
    row = dict.fromkeys(ROW_FIELDS)
    row.update(target=target, kind='backbone', mode='tensorrt', precision='fp16',
               device=device or summary.get('device_name', 'jetson'), batch=batch,
               height=height, width=width, status='ok',
               median_ms=gpu.get('median_ms'), p90_ms=gpu.get('p90_ms'),
               p99_ms=gpu.get('p99_ms'), mean_ms=gpu.get('mean_ms'),
               throughput_img_s=round(summary['throughput_qps'] * batch, 2),
               end_to_end_median_ms=summary.get('end_to_end', {}).get('median_ms'),
               tensorrt=summary.get('tensorrt'), trtexec_command=summary.get('command'))
    return row
