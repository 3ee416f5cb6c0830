"""The thin OpenMMLab layer: registers the pure-torch models in mmdet's and
mmseg's ``MODELS`` registries (the same class objects in both) and makes
mmengine load local checkpoints through the safe allow-list loader.

Each part is skipped when its package is not installed, so the backbones stay
usable where only torch is (the latency tool on a GPU machine without mmcv).
"""
import importlib

from .models import BACKBONES

#: registry modules -> why they might be missing
OPENMMLAB_REGISTRIES = ('mmdet.registry', 'mmseg.registry')


def registered_modules():
    """Every class this project puts into the OpenMMLab ``MODELS`` registries."""
    return dict(BACKBONES)


def register_all() -> list:
    """Register into every importable OpenMMLab registry; returns their scopes."""
    scopes = []
    for module_name in OPENMMLAB_REGISTRIES:
        try:
            registry = importlib.import_module(module_name).MODELS
        except ImportError:
            continue
        for name, cls in registered_modules().items():
            if registry.get(name) is not cls:
                registry.register_module(name=name, module=cls, force=True)
        scopes.append(registry.scope)
    return scopes


def install_safe_checkpoint_loader() -> bool:
    """Make runner checkpoints load under ``weights_only=True``.

    The allow-list is registered with torch (so a plain ``torch.load`` works
    too), and mmengine's local loading (``load_from``, ``--resume``) goes
    through :func:`efficientvit_det.checkpoints.load_checkpoint_file`, which
    names any refused object.
    """
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:
        return False
    from .checkpoints import load_checkpoint_file, register_allow_list
    register_allow_list()

    def load_from_local_allowlisted(filename, map_location):
        import os
        return load_checkpoint_file(os.path.expanduser(filename), map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_allowlisted, force=True)
    return True
