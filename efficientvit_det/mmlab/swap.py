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
import pprint
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..checkpoints.fetch import RELEASE_URLS
from ..errors import BackboneArgumentError, SwapRefusedError
from ..models import BACKBONE_NAMES
from ..models.neck import end_aligned_sources, transposed_fpn_strides
from ..models.timm_backbone import timm_levels
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

Levels = List[Tuple[int, int]]  # (stride, width), finest first
#: how a plan fits the levels: the new backbone's own levels (widths rewritten), our
#: TransposedFPN in place of a plain FPN, or a PyramidAdapter before the model's neck
METHODS = ('levels', 'TransposedFPN', 'PyramidAdapter')


@dataclass
class SwapPlan:
    """What :func:`plan_swap` changes: ``model`` holds the overrides of ``model``'s
    keys, ``why`` one line per override, ``custom_imports`` the base's plus ours;
    ``method`` says how the levels were fitted (:data:`METHODS`)."""
    base: str
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
    none, or a checkpoint (path, URL, ``release:<name>``)."""
    from mmengine.config import Config
    base = config if '::' in config else osp.abspath(config)
    plan = plan_swap(base, backbone, weights)
    return Config.fromstring(render_config(plan, base), '.py')


def plan_swap(config: str, backbone: str, weights=None) -> SwapPlan:
    """Read what ``config``'s model consumes and plan what makes ``backbone`` fit
    (see the module's docstring); refuse what cannot fit in one line."""
    cfg = read_config(config)
    model = cfg.model
    if not isinstance(model.get('backbone'), dict):
        raise SwapRefusedError(f'{config}: model ({model.get("type")}) has no backbone to '
                               'swap (swap_backbone replaces model.backbone)')
    wanted = levels_of_original(cfg)
    available = levels_of(backbone)
    plan = SwapPlan(base=config, backbone=backbone)
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    plan.custom_imports = imports + [m for m in ['efficientvit_det'] if m not in imports]
    consumers = consumer_keys(model)

    exact = [s for s, _ in available]
    if len({s for s, _ in wanted}) == len(wanted) and all(s in exact for s, _ in wanted):
        # the new backbone has every stride read: take those levels, no adapter
        indices = [exact.index(s) for s, _ in wanted]
        given = [available[i] for i in indices]
        plan.method = 'levels'
        if not fit_consumers(plan, model, consumers, [w for _, w in given]):
            plan.method = 'PyramidAdapter'
            add_adapter(plan, model, given, wanted, list(range(len(given))), exact_widths=True)
    elif plain_fpn_output(model.get('neck'), wanted, available) is not None:
        indices = list(range(len(available)))
        plan.method = 'TransposedFPN'
        plan.set('neck', transposed_fpn(model.neck, wanted, available),
                 f'our TransposedFPN in place of the FPN: the same outputs (strides '
                 f'{plain_fpn_output(model.neck, wanted, available)}), its finer levels made '
                 'by 2x2 transposed convolutions')
    else:
        plan.method = 'PyramidAdapter'
        sources = end_aligned_sources(len(available), len(wanted))
        indices = sorted(set(sources))
        given = [available[i] for i in indices]
        adapter_sources = [indices.index(j) for j in sources]
        for (stride, _), j in zip(wanted, adapter_sources):
            ratio = stride / given[j][0]
            if ratio != 2 ** round(math.log2(ratio)):
                raise SwapRefusedError(
                    f'model.{consumers[0] if consumers else "neck"} reads stride {stride}, '
                    f'which {backbone}\'s strides {[s for s, _ in given]} reach by no power '
                    'of two')
        widths = [given[j][1] for j in adapter_sources]
        rewritable = fit_consumers(plan, model, consumers, widths, dry_run=True)
        if rewritable:
            fit_consumers(plan, model, consumers, widths)
        add_adapter(plan, model, given, wanted, adapter_sources, exact_widths=not rewritable)

    plan.set('backbone', backbone_config(backbone, indices, weights, plan),
             plan.why.get('backbone', ''))
    if model.get('pretrained') is not None:  # mmseg hands it to the backbone
        plan.set('pretrained', None, f'was {model.pretrained!r}, weights of the old backbone')
    fit_normalisation(plan, model, backbone)
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


def levels_of(backbone: str) -> Levels:
    """Every level the new backbone can give."""
    if backbone.startswith('timm:'):
        return timm_levels(backbone[len('timm:'):])[0]
    if backbone not in BACKBONE_NAMES:
        raise BackboneArgumentError(f'unknown backbone {backbone!r}: one of '
                                    f'{sorted(BACKBONE_NAMES)} or timm:<model>')
    cls, arch = BACKBONE_NAMES[backbone]
    dims = cls.arch_settings[arch]['embed_dims']
    return [(16 * 2 ** i, int(width)) for i, width in enumerate(dims)]


def consumer_keys(model) -> List[str]:
    """The model parts that read the backbone's maps: its neck, or the heads of a
    model without one."""
    if model.get('neck'):
        return ['neck']
    return [k for k in ('decode_head', 'auxiliary_head', 'panoptic_head') if model.get(k)]


def fit_consumers(plan: SwapPlan, model, keys: List[str], widths: List[int],
                  dry_run: bool = False) -> bool:
    """Set each consumer's input widths to ``widths`` (one per level, in the order
    the old backbone gave them); False when one takes its widths in a form not
    known here (then nothing is set)."""
    updates = {}
    for key in keys:
        part = model[key]
        if isinstance(part, (list, tuple)):  # a list of necks / of auxiliary heads
            items = [reads_widths(p, widths) for p in part]
            if any(item is None for item in items):
                return False
            value = [dict(plain(p), **item) for p, item in zip(part, items)]
            if key == 'neck':  # only the first neck reads the backbone
                value = [value[0]] + [plain(p) for p in part[1:]]
        else:
            value = reads_widths(part, widths)
            if value is None:
                return False
        updates[key] = value
    if not dry_run:
        for key, value in updates.items():
            plan.set(key, value, f'{key} takes the new widths {widths}')
    return True


def reads_widths(part, widths: List[int]) -> Optional[dict]:
    """The ``in_channels`` (and mmseg's ``c1_in_channels``) of one consumer for
    these level widths, or None if it takes them in another form."""
    taken, index = part.get('in_channels'), part.get('in_index')
    if isinstance(taken, (list, tuple)):
        if isinstance(index, (list, tuple)):
            update = dict(in_channels=[widths[i] for i in index])
        elif len(taken) == len(widths):
            update = dict(in_channels=list(widths))
        else:
            return None
    elif isinstance(taken, int):
        if isinstance(index, int):
            update = dict(in_channels=widths[index])
        elif len(widths) == 1:
            update = dict(in_channels=widths[0])
        else:
            return None
    else:
        return None
    if 'c1_in_channels' in part:  # DeepLabV3+'s decoder reads the first map too
        update['c1_in_channels'] = widths[0]
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
    finest = available[0][0]
    if outs[0] > finest or finest % outs[0] or finest & (finest - 1):
        return None
    steps = (finest // outs[0]).bit_length() - 1
    built = transposed_fpn_strides([s for s, _ in available], steps, neck.num_outs)
    return outs if built == outs else None


def transposed_fpn(neck, wanted: Levels, available: Levels) -> dict:
    finest = available[0][0]
    outs = plain_fpn_output(neck, wanted, available)
    return dict(_delete_=True, type='TransposedFPN', in_channels=[w for _, w in available],
                in_strides=[s for s, _ in available], out_channels=neck.out_channels,
                num_outs=neck.num_outs,
                num_extra_trans_convs=(finest // outs[0]).bit_length() - 1,
                add_extra_convs=neck.get('add_extra_convs', False),
                relu_before_extra_convs=neck.get('relu_before_extra_convs', False))


def add_adapter(plan: SwapPlan, model, given: Levels, wanted: Levels, sources: List[int],
                exact_widths: bool) -> None:
    """A PyramidAdapter before the model's neck (or as the neck of a model that has
    none), handing on the levels the old backbone gave."""
    widths = [w for _, w in wanted] if exact_widths else [given[j][1] for j in sources]
    adapter = dict(type='PyramidAdapter', in_channels=[w for _, w in given],
                   in_strides=[s for s, _ in given], out_channels=widths,
                   out_strides=[s for s, _ in wanted], sources=sources)
    why = (f'a PyramidAdapter hands on strides {[s for s, _ in wanted]} (what the old '
           f'backbone gave) from the new backbone\'s {[s for s, _ in given]}')
    neck = model.get('neck')
    if not neck:
        plan.set('neck', adapter, why + '; the model had no neck')
        return
    necks = plain(neck) if isinstance(neck, (list, tuple)) else [plain(neck)]
    widths_set = plan.model.get('neck')  # the first neck's new in_channels, if set
    if widths_set:
        necks[0].update(widths_set[0] if isinstance(widths_set, list) else widths_set)
    plan.set('neck', [adapter] + necks, why + ', then the model\'s own neck')


def backbone_config(backbone: str, indices: List[int], weights, plan: SwapPlan) -> dict:
    """The backbone's config with its weights; ``plan.why['backbone']`` says which."""
    if backbone.startswith('timm:'):
        name = backbone[len('timm:'):]
        if weights is None:
            pretrained, said = True, "timm's ImageNet weights (fetched when it is built)"
        elif weights in NO_WEIGHTS:
            pretrained, said = False, 'no weights: trained from scratch'
        else:
            pretrained, said = weights, f'weights {weights}'
        plan.why['backbone'] = f'{backbone} levels {indices}, {said}'
        return dict(_delete_=True, type='TimmBackbone', model_name=name,
                    out_indices=tuple(indices), pretrained=pretrained,
                    norm_eval=bool(pretrained))
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
    plan.why['backbone'] = (f'{backbone} (strides {[16 * 2 ** i for i in indices]}), '
                            f'{said}')
    return dict(_delete_=True, type=cls.__name__, arch=arch, out_indices=tuple(indices),
                norm_eval=checkpoint is not None,
                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))


def fit_normalisation(plan: SwapPlan, model, backbone: str) -> None:
    """The input normalisation the new backbone's weights were trained with."""
    preprocessor = model.get('data_preprocessor')
    if not isinstance(preprocessor, dict) or 'mean' not in preprocessor:
        return
    if backbone.startswith('timm:'):
        mean, std = timm_levels(backbone[len('timm:'):])[1]
    else:
        mean, std = IMAGENET_MEAN_STD
    mean, std = [round(v, 3) for v in mean], [round(v, 3) for v in std]
    if list(preprocessor.mean) == mean and list(preprocessor.std) == std and \
            preprocessor.get('bgr_to_rgb'):
        return
    plan.set('data_preprocessor', dict(mean=mean, std=std, bgr_to_rgb=True),
             'the input normalisation of the new backbone\'s ImageNet weights (RGB)')


def plain(value):
    """A config value as plain dicts and lists (ConfigDict -> dict)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def python_literal(value, indent: int = 0, prefix: int = 0) -> str:
    """A value as Python a person reads: ``dict(k=v)``, one key per line when it
    does not fit a line after ``indent + prefix`` characters."""
    value = plain(value)
    inline = pprint.pformat(value, width=10 ** 6, sort_dicts=False)
    if isinstance(value, dict):
        items = [f'{k}={python_literal(v, indent + 4)}' for k, v in value.items()]
        text = f'dict({", ".join(items)})'
        if len(text) + indent + prefix <= 88 and '\n' not in text:
            return text
        pad = ' ' * (indent + 4)
        return 'dict(\n' + ''.join(f'{pad}{item},\n' for item in items) + ' ' * indent + ')'
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        pad = ' ' * (indent + 4)
        return '[\n' + ''.join(f'{pad}{python_literal(v, indent + 4)},\n' for v in value) + \
            ' ' * indent + ']'
    return inline


def render_config(plan: SwapPlan, base_ref: str) -> str:
    """The plan as a config file that inherits ``base_ref``, each override with a
    comment saying why."""
    lines = [f'# {plan.backbone} in place of the backbone of {base_ref}',
             '# (written by tools/swap_backbone.py; everything not set here is the base\'s)',
             f'_base_ = {base_ref!r}',
             f'custom_imports = dict(imports={plan.custom_imports!r}, '
             'allow_failed_imports=False)', '', 'model = dict(']
    for key in ordered_keys(plan):
        lines += textwrap.wrap(plan.why[key], 84, initial_indent='    # ',
                               subsequent_indent='    #   ')
        lines.append(f'    {key}={python_literal(plan.model[key], 4, len(key) + 1)},')
    lines.append(')')
    return '\n'.join(lines) + '\n'


def ordered_keys(plan: SwapPlan) -> List[str]:
    """Backbone first, then what reads it, in the order a model runs."""
    first = ['backbone', 'neck']
    return [k for k in first if k in plan.model] + [k for k in plan.model if k not in first]


def describe_plan(plan: SwapPlan) -> List[str]:
    """One line per change, for the tool to print."""
    return [f'model.{key}: {plan.why[key]}' for key in ordered_keys(plan)]

