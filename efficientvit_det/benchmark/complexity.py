"""A whole detector's / segmentor's parameters and multiply-accumulates per part
(``tools/analysis/get_flops.py``)."""
from typing import Dict, List

import torch

from ..deploy.targets import build_target
from .measure import count_flops_by_module

#: the parts of a detector / segmentor, in the order data flows through them
PARTS = ('backbone', 'neck', 'rpn_head', 'bbox_head', 'roi_head.bbox_head',
         'roi_head.mask_head', 'decode_head', 'auxiliary_head')


def model_complexity(config: str, height: int, width: int) -> List[Dict[str, object]]:
    """Rows (part, params_m, gmacs) for the whole model of ``config`` on one
    ``height`` x ``width`` image, ending with the total, in mmdet's tensor mode: a
    two-stage box head runs on every proposal the RPN keeps at test time
    (``test_cfg.rpn.max_per_img``), the mask head on the first 100."""
    target = build_target(config=config, whole=True, post_processing=False)
    target.check_fits(1, height, width)  # a size that cannot fit: one line, nothing allocated
    wrapped = target.model
    model = wrapped.model
    torch.manual_seed(0)  # the proposals the RoI heads see depend on the weights
    macs = count_flops_by_module(wrapped, torch.zeros(1, 3, height, width))
    modules = dict(model.named_modules())
    rows = []
    for part in PARTS:
        if part in modules:
            params = sum(p.numel() for p in modules[part].parameters())
            rows.append(dict(part=part, params_m=params / 1e6,
                             gmacs=macs_of(macs, f'model.{part}') / 1e9))
    rows.append(dict(part='total', params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                     gmacs=macs[''] / 1e9))
    return rows


def macs_of(counts: Dict[str, int], name: str) -> int:
    """MACs of module ``name``; mmdet runs some heads through ``head.forward()``,
    which only their submodules see, so then the outermost of those are summed."""
    if name in counts:
        return counts[name]
    inside = [k for k in counts if k.startswith(name + '.')]
    return sum(counts[k] for k in inside
               if not any(k.startswith(other + '.') for other in inside))


def format_complexity(rows: List[Dict[str, object]]) -> str:
    total = rows[-1]['gmacs'] or 1
    lines = [f'{"part":<20} {"params (M)":>10} {"GMACs":>9} {"share":>6}']
    for row in rows:
        lines.append(f'{row["part"]:<20} {row["params_m"]:>10.2f} {row["gmacs"]:>9.2f} '
                     f'{100 * row["gmacs"] / total:>5.1f}%')
    return '\n'.join(lines)
