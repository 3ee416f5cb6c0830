"""The pyramid-stride check: a neck must feed each head the strides it reads.

A stride-16/32/64 backbone behind a stock FPN builds, trains and learns nothing,
because the RPN's anchors and the RoI extractors read strides 4-64. Our tools run
:func:`check_pyramid_strides` on every model they build; call it on your own, or
add ``dict(type='PyramidStrideCheckHook')`` to a config's ``custom_hooks``.
"""
from typing import List, Optional

from torch.nn import Sequential

from ..errors import PyramidStrideError

NECK_ADVICE = ('SHViT / EfficientViT / UniForm emit strides 16/32/64 only: use '
               'TransposedFPN with num_extra_trans_convs=2 for strides 4-64 (Mask R-CNN, '
               'Semantic FPN) or num_extra_trans_convs=1 plus add_extra_convs for 8-128 '
               '(RetinaNet).')


def backbone_strides(backbone) -> Optional[List[int]]:
    info = getattr(backbone, 'feature_info', None)
    if isinstance(info, list) and info and all('reduction' in f for f in info):
        return [int(f['reduction']) for f in info]
    return None  # a backbone we know nothing about (ResNet, ...): not checked


def neck_strides(neck, in_strides: List[int]) -> Optional[List[int]]:
    if isinstance(neck, Sequential):  # a list of necks (swap_backbone's adapter first)
        for part in neck:
            in_strides = neck_strides(part, in_strides)
            if in_strides is None:
                return None
        return in_strides
    if hasattr(neck, 'out_strides'):
        return list(neck.out_strides)
    if all(hasattr(neck, a) for a in ('start_level', 'backbone_end_level', 'num_outs')):
        strides = in_strides[neck.start_level:neck.backbone_end_level]  # mmdet / mmseg FPN
        while len(strides) < neck.num_outs:
            strides.append(strides[-1] * 2)
        return strides[:neck.num_outs]
    return None


def expected_strides(model):
    """(consumer, strides, exact) for every head that reads the pyramid by stride."""
    found = []
    for name in ('rpn_head', 'bbox_head'):
        head = getattr(model, name, None)
        generator = getattr(head, 'prior_generator', None)
        if generator is not None and hasattr(generator, 'strides'):
            found.append((f'{name} anchors', [int(s[0]) for s in generator.strides], True))
    roi_head = getattr(model, 'roi_head', None)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractor = getattr(roi_head, name, None)
        if extractor is not None and hasattr(extractor, 'featmap_strides'):
            found.append((f'roi_head.{name}', [int(s) for s in extractor.featmap_strides], False))
    decode = getattr(model, 'decode_head', None)
    if decode is not None and hasattr(decode, 'feature_strides'):
        index = decode.in_index if isinstance(decode.in_index, (list, tuple)) else [decode.in_index]
        found.append(('decode_head', list(decode.feature_strides), index))
    return found


def check_pyramid_strides(model) -> None:
    """Raise :class:`PyramidStrideError` when the neck takes other widths than the
    backbone gives (found at build time, not in the first forward) or feeds a head
    the wrong strides."""
    backbone, neck = getattr(model, 'backbone', None), getattr(model, 'neck', None)
    strides_in = backbone_strides(backbone) if backbone is not None else None
    if strides_in is None or neck is None:
        return
    widths = [int(f['num_chs']) for f in backbone.feature_info if 'num_chs' in f]
    taken = getattr(neck[0] if isinstance(neck, Sequential) else neck, 'in_channels', None)
    if isinstance(taken, (list, tuple)) and len(widths) == len(strides_in) and \
            list(taken) != widths:
        raise PyramidStrideError(
            f'{type(model).__name__}: the neck ({type(neck).__name__}) takes in_channels '
            f'{list(taken)} but backbone {type(backbone).__name__} gives {widths} (strides '
            f'{strides_in}): set model.neck.in_channels={widths}')
    strides = neck_strides(neck, list(strides_in))
    if strides is None:
        return
    for consumer, wanted, rule in expected_strides(model):
        if rule is True:
            given, ok = strides, strides == wanted
        elif rule is False:  # RoI extractors read the first len(wanted) levels
            given, ok = strides[:len(wanted)], strides[:len(wanted)] == wanted
        else:  # decode head: the levels selected by in_index
            given = [strides[i] if i < len(strides) else None for i in rule]
            ok = given == wanted
        if not ok:
            raise PyramidStrideError(
                f'{type(model).__name__}: the neck ({type(neck).__name__}) outputs strides '
                f'{strides} but {consumer} expects {wanted} (gets {given}) from backbone '
                f'{type(backbone).__name__} with strides {strides_in}. {NECK_ADVICE}')
