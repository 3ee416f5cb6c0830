"""A trained detector taken to deployment in one call (the demo's last step): the
whole detector exported to ONNX, the file checked on real images, and eager
PyTorch timed against ONNX Runtime on one of them, side by side."""
from typing import List

import torch

from ..deploy.detector_graph import image_input
from ..deploy.onnx_export import describe, export_checked
from ..deploy.targets import build_target
from ..mmlab.scope import read_config
from .grid import run_grid


def export_check_and_time(config: str, checkpoint: str, images: List[str], out: str) -> dict:
    """Export the trained whole detector (BatchNorms folded, as deployed) to ``out``,
    check it on ``images`` against the graph in PyTorch and mmdet's ``predict``, and
    time eager PyTorch against ONNX Runtime on the first; returns what it found. A
    mismatch raises ExportMismatch with the file set aside. The size is the config's
    toy image scale (what it trained at)."""
    width, height = read_config(config).toy_image_scale
    print(f'[demo] exporting the whole detector to ONNX at {height}x{width} and checking '
          f'it on {len(images)} val images ...')
    inputs = [image_input(path, height, width) for path in images]
    target = build_target(config=config, whole=True, checkpoint=checkpoint,
                          image=inputs[0]).fuse()
    reports = export_checked(target, inputs, out, trained=True)
    print('\n'.join(describe(report) for report in reports))
    print('[demo] timing eager PyTorch and ONNX Runtime on one val image (ms per image):')
    rows = run_grid([target], [(height, width)], [1], ['eager', 'onnxruntime'], 'cpu',
                    threads=torch.get_num_threads(), iters=20, warmup=3)
    return dict(onnx=out, onnx_checked_images=len(inputs),
                latency_ms={row['mode']: row.get('median_ms') for row in rows})
