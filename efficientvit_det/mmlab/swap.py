"""Any of our backbones, or a timm model, in place of the backbone of any mmdet or
mmseg model config.

A model's neck and heads are built for the levels its own backbone gives: the
strides they read and the widths they take. Ours start at stride 16, so a stock
config fed one builds and then fails in a forward (a shape error) or trains on the
wrong strides (silently). :func:`plan_swap` runs the model's own backbone once on a
blank image to see those levels, then makes the new backbone give them:

1. the new backbone has every stride the model reads (a timm ResNet in place of
   mmdet's): those levels are taken, the consumers' widths rewritten;
2. the model has a plain FPN: our :class:`TransposedFPN` in its place, with the
   same outputs (transposed-conv levels for the finer strides);
3. otherwise a :class:`PyramidAdapter` resamples the new levels to the model's
   strides, before the model's own neck (a list of necks: an mmengine
   ``Sequential``) or as the neck of a model that has none.

The rest of the model and the recipe stay as they are. The plan is written out as
a config that inherits the given one (:func:`render_config`); :func:`swap_backbone`
loads that text, so the file the tool writes and the API's config are one thing.
"""
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..checkpoints.fetch import RELEASE_URLS
from ..errors import BackboneArgumentError, SwapRefusedError
from ..models import BACKBONE_NAMES
from ..models.neck import end_aligned_sources, transposed_fpn_strides
from ..models.timm_backbone import timm_levels
from .config_writer import base_reference, plain, render_config
from .scope import build_from_config, read_config, without_pretrained_weights

#: the input normalisation our backbones' ImageNet weights were trained with (RGB, 0-255)
IMAGENET_MEAN_STD = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
#: side of the blank image the model's own backbone is run on to read its levels
PROBE_SIDE = 256
#: an FPN config with only these keys is replaced by our TransposedFPN
PLAIN_FPN_KEYS = {'type', 'in_channels', 'out_channels', 'num_outs', 'start_level',
                  'end_level', 'add_extra_convs', 'relu_before_extra_convs', 'init_cfg'}
#: values that train the backbone from scratch (``--weights none``)
NO_WEIGHTS = (False, 'none', '')
#: the heads that read the backbone's maps in a model without a neck
HEADS_READING_THE_BACKBONE = ('decode_head', 'auxiliary_head', 'panoptic_head')

Levels = List[Tuple[int, int]]  # (stride, width), finest first


@dataclass
class SwapPlan:
    """What :func:`plan_swap` changes: ``model`` holds the overrides of ``model``'s
    keys, ``why`` one line per override, ``custom_imports`` the base's plus ours;
    ``method`` says how the levels were fitted: ``levels`` (the new backbone's own,
    widths rewritten), ``TransposedFPN`` or ``PyramidAdapter``."""
    backbone: str
    method: str = ''
    model: Dict[str, object] = field(default_factory=dict)
    why: Dict[str, str] = field(default_factory=dict)
    custom_imports: List[str] = field(default_factory=list)

    def set(self, key: str, value, why: str) -> None:
        self.model[key] = value
        self.why[key] = why


def swap_backbone(config: str, backbone: str, weights=None):
    """A new mmengine ``Config``: ``config`` (a path or ``mmdet::``/``mmseg::`` name)
    with ``backbone`` (``shvit_s4``, ``efficientvit_m4``, ``uniform_l``,
    ``timm:<model>``) in place of its backbone. ``weights``: None for the
    backbone's released ImageNet weights where there are some, ``'none'`` for
    none, or a checkpoint (ours: path, URL, ``release:<name>``; timm: a file)."""
    return swapped(config, backbone, weights)[1]


def swapped(config: str, backbone: str, weights=None):
    """``(plan, Config)``: the plan, and the config its file text loads as."""
    from mmengine.config import Config
    base = base_reference(config)
    plan = plan_swap(base, backbone, weights)
    return plan, Config.fromstring(render_config(plan, base), '.py')


def plan_swap(config: str, backbone: str, weights=None) -> SwapPlan:
    """Read what ``config``'s model consumes and plan what makes ``backbone`` fit
    (see the module's docstring); refuse what cannot fit in one line."""
    cfg = read_config(config)
    model = cfg.model
    if not isinstance(model.get('backbone'), dict):
        raise SwapRefusedError(f'{config}: model ({model.get("type")}) has no backbone to '
                               'swap (swap_backbone replaces model.backbone)')
    wanted = levels_of_original(cfg)
    consumers = consumer_keys(model)
    if not consumers:
        heads = [k for k in ('rpn_head', 'roi_head', 'bbox_head') if model.get(k)]
        raise SwapRefusedError(
            f'{model.get("type")} reads its backbone without a neck, in '
            f'{" and ".join(f"model.{k}" for k in heads) or "its heads"} (e.g. a shared ResNet '
            'stage of a C4 head): swap_backbone fits models whose neck, or decode / '
            'panoptic head, reads the backbone')
    available, mean_std = levels_of(backbone)
    plan = SwapPlan(backbone=backbone)
    imports = cfg.get('custom_imports', {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    plan.custom_imports = imports + [m for m in ['efficientvit_det'] if m not in imports]

    exact = [s for s, _ in available]
    fpn_outputs = plain_fpn_output(model.get('neck'), wanted, available)
    if len({s for s, _ in wanted}) == len(wanted) and all(s in exact for s, _ in wanted):
        # the new backbone has every stride read: take those levels, no adapter
        indices = [exact.index(s) for s, _ in wanted]
        given = [available[i] for i in indices]
        updates = consumer_widths(model, consumers, [w for _, w in wanted],
                                  [w for _, w in given])
        if updates is not None:
            plan.method = 'levels'
            for key, value in updates.items():
                plan.set(key, value, f'{key} takes the new widths {[w for _, w in given]}')
        else:
            plan.method = 'PyramidAdapter'
            add_adapter(plan, model, given, wanted, list(range(len(given))),
                        [w for _, w in wanted])
    elif fpn_outputs is not None:
        indices = list(range(len(available)))
        plan.method = 'TransposedFPN'
        plan.set('neck', transposed_fpn(model.neck, fpn_outputs, available),
                 f'our TransposedFPN in place of the FPN: the same strides ({fpn_outputs}) and '
                 'width, its finer levels made by 2x2 transposed convolutions')
    else:
        plan.method = 'PyramidAdapter'
        sources = end_aligned_sources(len(available), len(wanted))
        indices = sorted(set(sources))
        given = [available[i] for i in indices]
        sources = [indices.index(j) for j in sources]
        for (stride, _), j in zip(wanted, sources):
            ratio = stride / given[j][0]
            if ratio != 2 ** round(math.log2(ratio)):
                raise SwapRefusedError(
                    f'model.{consumers[0]} reads stride {stride}, which {backbone}\'s '
                    f'strides {[s for s, _ in given]} reach by no power of two')
        widths = [given[j][1] for j in sources]
        updates = consumer_widths(model, consumers, [w for _, w in wanted], widths)
        for key, value in (updates or {}).items():
            plan.set(key, value, f'{key} takes the new widths {widths}')
        add_adapter(plan, model, given, wanted, sources,
                    widths if updates is not None else [w for _, w in wanted])

    config_of, why = backbone_config(backbone, indices, [available[i][0] for i in indices],
                                     weights)
    plan.set('backbone', config_of, why)
    if model.get('pretrained') is not None:  # mmseg hands it to the backbone
        plan.set('pretrained', None, f'was {model.pretrained!r}, weights of the old backbone')
    fit_normalisation(plan, model, mean_std)
    return plan


def levels_of_original(cfg) -> Levels:
    """The (stride, width) of each map the config's own backbone gives, read by
    running it (no weights) on a blank image: works for any backbone, dilated ones
    included."""
    import torch
    backbone = build_from_config(cfg, 'MODELS', without_pretrained_weights(cfg.model.backbone))
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE))
    name = cfg.model.backbone.get('type')
    if isinstance(outs, torch.Tensor):
        outs = [outs]
    if not all(isinstance(x, torch.Tensor) and x.dim() == 4 for x in outs):
        readers = ', '.join(f'model.{k} ({part_type(cfg.model[k])})'
                            for k in consumer_keys(cfg.model))
        raise SwapRefusedError(
            f'{readers or "the model"} reads what model.backbone ({name}) returns, '
            f'{describe(outs)}, not feature maps (N, C, H, W): swap_backbone fits models '
            'whose neck or heads read feature maps')
    return [(round(PROBE_SIDE / x.shape[-1]), int(x.shape[1])) for x in outs]


def part_type(part) -> str:
    parts = part if isinstance(part, (list, tuple)) else [part]
    return ' + '.join(str(p.get('type')) for p in parts)


def describe(outs) -> str:
    kinds = [type(x).__name__ if not hasattr(x, 'dim') else f'{x.dim()}-d tensor'
             for x in outs]
    return f'({", ".join(kinds)})'


def levels_of(backbone: str):
    """Every level the new backbone can give, and the input mean / std (0-255) its
    weights were trained with."""
    if backbone.startswith('timm:'):
        return timm_levels(backbone[len('timm:'):])
    if backbone not in BACKBONE_NAMES:
        raise BackboneArgumentError(f'unknown backbone {backbone!r}: one of '
                                    f'{sorted(BACKBONE_NAMES)} or timm:<model>')
    cls, arch = BACKBONE_NAMES[backbone]
    return list(zip(cls.stage_strides, cls.arch_settings[arch]['embed_dims'])), \
        IMAGENET_MEAN_STD


def consumer_keys(model) -> List[str]:
    """The model parts that read the backbone's maps: its neck, or the heads of a
    model without one."""
    if model.get('neck'):
        return ['neck']
    return [k for k in HEADS_READING_THE_BACKBONE if model.get(k)]


def consumer_widths(model, keys: List[str], old: List[int],
                    new: List[int]) -> Optional[Dict[str, object]]:
    """Each consumer's config with its input widths set to ``new`` (one per level,
    in the order the old backbone gave them, whose widths were ``old``); None when
    one takes its widths in a form not recognised (then the adapter hands on the
    old widths)."""
    updates = {}
    for key in keys:
        part = model[key]
        if isinstance(part, (list, tuple)):  # a list of necks / of auxiliary heads
            readers = part[:1] if key == 'neck' else part  # only the first neck reads it
            items = [reads_widths(p, old, new) for p in readers]
            if any(item is None for item in items):
                return None
            value = [dict(plain(p), **item) for p, item in zip(readers, items)]
            updates[key] = value + [plain(p) for p in part[len(readers):]]
        else:
            updates[key] = reads_widths(part, old, new)
            if updates[key] is None:
                return None
    return updates


def reads_widths(part, old: List[int], new: List[int]) -> Optional[dict]:
    """The ``in_channels`` (and mmseg's ``c1_in_channels``) of one consumer for the
    new widths, when its own say it reads the old ones in order (through
    ``in_index`` where it has one); else None."""
    taken, index = part.get('in_channels'), part.get('in_index')
    if isinstance(taken, (list, tuple)):
        index = list(index) if isinstance(index, (list, tuple)) else range(len(old))
        if list(taken) != [old[i] for i in index]:
            return None  # another order (YOLOv3's neck: coarsest first) or a subset
        update = dict(in_channels=[new[i] for i in index])
    elif isinstance(taken, int):
        index = index if isinstance(index, int) else (0 if len(old) == 1 else None)
        if index is None or taken != old[index]:
            return None
        update = dict(in_channels=new[index])
    else:
        return None
    if 'c1_in_channels' in part:  # DeepLabV3+'s decoder reads the first map too
        if part['c1_in_channels'] != old[0]:
            return None
        update['c1_in_channels'] = new[0]
    return update


def plain_fpn_output(neck, wanted: Levels, available: Levels) -> Optional[List[int]]:
    """The strides a plain FPN ``neck`` outputs on the old backbone, when our
    TransposedFPN on the new one can output the same; else None."""
    if not isinstance(neck, dict) or neck.get('type') != 'FPN' or set(neck) - PLAIN_FPN_KEYS:
        return None
    strides = [s for s, _ in wanted]
    end = neck.get('end_level', -1)
    outs = strides[neck.get('start_level', 0):None if end == -1 else end + 1]
    while len(outs) < neck.num_outs:
        outs.append(outs[-1] * 2)
    outs = outs[:neck.num_outs]
    steps = finer_steps(available[0][0], outs[0])
    if steps is None:
        return None
    built = transposed_fpn_strides([s for s, _ in available], steps, neck.num_outs)
    return outs if built == outs else None


def finer_steps(finest: int, wanted: int) -> Optional[int]:
    """How many 2x transposed convolutions take stride ``finest`` to ``wanted``."""
    if wanted > finest or finest % wanted or (finest // wanted) & (finest // wanted - 1):
        return None
    return (finest // wanted).bit_length() - 1


def transposed_fpn(neck, outs: List[int], available: Levels) -> dict:
    return dict(_delete_=True, type='TransposedFPN', in_channels=[w for _, w in available],
                in_strides=[s for s, _ in available], out_channels=neck.out_channels,
                num_outs=neck.num_outs,
                num_extra_trans_convs=finer_steps(available[0][0], outs[0]),
                add_extra_convs=neck.get('add_extra_convs', False),
                relu_before_extra_convs=neck.get('relu_before_extra_convs', False))


def add_adapter(plan: SwapPlan, model, given: Levels, wanted: Levels, sources: List[int],
                widths: List[int]) -> None:
    """A PyramidAdapter before the model's neck (or as the neck of a model that has
    none), handing on the levels the old backbone gave, at ``widths``."""
    adapter = dict(type='PyramidAdapter', in_channels=[w for _, w in given],
                   in_strides=[s for s, _ in given], out_channels=widths,
                   out_strides=[s for s, _ in wanted], sources=sources)
    why = (f'a PyramidAdapter hands on strides {[s for s, _ in wanted]} (what the old '
           f'backbone gave) from the new backbone\'s {[s for s, _ in given]}')
    neck = model.get('neck')
    if not neck:  # a base saying neck=None: a dict merges into it only with _delete_
        plan.set('neck', dict(_delete_=True, **adapter) if 'neck' in model else adapter,
                 why + '; the model had no neck')
        return
    necks = plan.model.get('neck') or neck  # with the new widths, if set
    necks = plain(necks) if isinstance(necks, (list, tuple)) else [plain(neck)]
    if isinstance(plan.model.get('neck'), dict):
        necks[0].update(plan.model['neck'])
    plan.set('neck', [adapter] + necks, why + ', then the model\'s own neck')


def backbone_config(backbone: str, indices: List[int], strides: List[int], weights):
    """The backbone's config with its weights, and a line saying which."""
    if backbone.startswith('timm:'):
        name = backbone[len('timm:'):]
        if weights is None:
            pretrained, said = True, "timm's ImageNet weights (fetched when it is built)"
        elif weights in NO_WEIGHTS:
            pretrained, said = False, 'no weights: trained from scratch'
        elif osp.isfile(weights):
            pretrained, said = weights, f'weights {weights} (timm\'s layout)'
        else:
            raise SwapRefusedError(f'--weights {weights}: a timm backbone takes a local file '
                                   'in timm\'s layout, or none (default: timm\'s own)')
        return dict(_delete_=True, type='TimmBackbone', model_name=name,
                    out_indices=tuple(indices), pretrained=pretrained,
                    norm_eval=bool(pretrained)), f'{backbone} levels {indices}, {said}'
    cls, arch = BACKBONE_NAMES[backbone]
    if weights is None:
        checkpoint = f'release:{backbone}' if backbone in RELEASE_URLS else None
        said = (f'the paper\'s ImageNet weights ({checkpoint})' if checkpoint else
                f'{backbone} has no released ImageNet weights: trained from scratch')
    elif weights in NO_WEIGHTS:
        checkpoint, said = None, 'no weights: trained from scratch'
    else:
        checkpoint, said = weights, f'weights {weights}'
    if cls.__name__ == 'EfficientViT':
        said += ('; 7x7 attention windows in every stage, as the papers\' detectors (the '
                 'release\'s 4x4 last-stage bias tables are resized on load)')
    return dict(_delete_=True, type=cls.__name__, arch=arch, out_indices=tuple(indices),
                norm_eval=checkpoint is not None,
                init_cfg=dict(type='Pretrained', checkpoint=checkpoint)), \
        f'{backbone} (strides {strides}), {said}'


def fit_normalisation(plan: SwapPlan, model, mean_std) -> None:
    """The input normalisation the new backbone's weights were trained with."""
    preprocessor = model.get('data_preprocessor')
    if not isinstance(preprocessor, dict) or 'mean' not in preprocessor:
        return
    mean, std = ([round(v, 3) for v in values] for values in mean_std)
    if list(preprocessor.mean) == mean and list(preprocessor.std) == std and \
            preprocessor.get('bgr_to_rgb'):
        return
    plan.set('data_preprocessor', dict(mean=mean, std=std, bgr_to_rgb=True),
             'the input normalisation of the new backbone\'s ImageNet weights (RGB)')
