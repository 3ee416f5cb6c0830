"""Any timm model as a detection/segmentation backbone (for baselines such as
FastViT or RepViT in the same detector as ours)."""
import logging
from typing import Sequence, Union

from ..errors import BackboneArgumentError
from ..log import log_message
from .base import FreezableBackbone


def check_timm_name(model_name: str) -> None:
    import timm
    if model_name not in timm.list_models():
        raise BackboneArgumentError(
            f'timm has no model {model_name!r} (timm {timm.__version__}); see '
            f'timm.list_models(), e.g. {timm.list_models("*fastvit*")[:3]}')


def timm_levels(model_name: str):
    """``[(stride, width), ...]`` of every feature level the timm model has (built
    without weights), and its pretrained input mean / std on the 0-255 scale."""
    import timm
    check_timm_name(model_name)
    model = timm.create_model(model_name, features_only=True, pretrained=False)
    info = model.feature_info
    config = model.pretrained_cfg
    scale = [255 * v for v in config.get('mean', (0.485, 0.456, 0.406))], \
        [255 * v for v in config.get('std', (0.229, 0.224, 0.225))]
    return list(zip(info.reduction(), info.channels())), scale


class TimmBackbone(FreezableBackbone):
    """``timm.create_model(model_name, features_only=True)`` with detector knobs.

    Args:
        model_name: any timm model that supports ``features_only``.
        out_indices: feature levels to return (indices into timm's feature_info).
        frozen_stages: -1 trains everything; k >= 0 freezes every module up to
            and including the one producing feature level k - 1 (k = 0: nothing
            but the modules before the first level, i.e. the stem).
        norm_eval: keep normalisation layers in eval mode while training.
        pretrained: False/None (random init, a warning is logged), True (timm's
            hub weights) or a local checkpoint file in timm's layout.
        **timm_kwargs: passed to ``timm.create_model``.
    """

    def __init__(self, model_name: str, out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False,
                 pretrained: Union[bool, str, None] = False, init_cfg=None, **timm_kwargs):
        super().__init__(init_cfg=init_cfg)
        import timm
        check_timm_name(model_name)
        if isinstance(pretrained, str):
            timm_kwargs['pretrained_cfg_overlay'] = dict(file=pretrained)
        elif not pretrained:
            log_message(f'TimmBackbone({model_name!r}): no pretrained weights, training '
                        'from scratch', logging.WARNING)
        self.model = timm.create_model(model_name, features_only=True,
                                       out_indices=tuple(out_indices),
                                       pretrained=bool(pretrained), **timm_kwargs)
        info = self.model.feature_info
        self.out_indices = tuple(out_indices)
        self.out_channels = info.channels()
        self.feature_info = [dict(num_chs=c, reduction=r, module=m) for c, r, m in
                             zip(info.channels(), info.reduction(), info.module_name())]
        all_levels = [level['module'].replace('.', '_') for level in info.info]
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._frozen_modules = self._modules_up_to(all_levels, frozen_stages)
        self._freeze()

    def _modules_up_to(self, level_modules, frozen_stages):
        if frozen_stages < 0:
            return []
        if frozen_stages > len(level_modules):
            raise ValueError(f'frozen_stages={frozen_stages} but the model has '
                             f'{len(level_modules)} feature levels')
        children = list(self.model.named_children())
        names = [name for name, _ in children]
        last = names.index(level_modules[frozen_stages - 1]) if frozen_stages > 0 else \
            names.index(level_modules[0]) - 1
        return [module for _, module in children[:last + 1]]

    def frozen_modules(self):
        return self._frozen_modules

    def forward(self, x):
        return tuple(self.model(x))
