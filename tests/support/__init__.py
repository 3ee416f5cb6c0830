"""What the tests share (one place; no test file imports another)."""
import argparse
import glob
import os

from mmengine.config import Config, DictAction

from efficientvit_det.mmlab.scope import build_model_from_config
# the library's own non-trivial weights for checks (the latency and export tools use
# them too), under the short name the tests use
from efficientvit_det.models.checking import randomize_for_checking_ as randomize_  # noqa: F401,E501

#: the repository: configs/, tools/, benchmarks/
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: key layouts of the public checkpoints (name<TAB>shape per tensor)
REFERENCE_DIR = os.path.join(ROOT, 'tests', 'reference_keys')
#: every config a user runs (not the shared bases)
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if not os.path.basename(p).startswith('_') and '_base_' not in p)
#: the toy Mask R-CNN the demo trains
TOY_MASK_RCNN = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py')


def config_path(name: str) -> str:
    """``configs/<name>``."""
    return os.path.join(ROOT, 'configs', name)


def load_config(name: str, **model_overrides) -> Config:
    """``configs/<name>`` with ``model`` keys overridden."""
    cfg = Config.fromfile(config_path(name))
    if model_overrides:
        cfg.model.merge(model_overrides)
    return cfg


def build(name: str):
    """The model of ``configs/<name>``, built offline (no pretrained weights fetched)."""
    return build_model_from_config(config_path(name))


def read_reference_keys(path):
    """``name<TAB>shape`` lines -> {name: shape tuple}."""
    keys = {}
    with open(path) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            keys[name] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    return keys


def toy_options(root, workers: int = 0):
    """``--cfg-options`` pointing a toy config at the toy COCO dataset at ``root``,
    with ``workers`` non-persistent dataloader workers."""
    root = str(root).rstrip('/') + '/'
    options = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
    options += [f'{s}_evaluator.ann_file={root}annotations/instances_val.json'
                for s in ('val', 'test')]
    options += [f'{s}_dataloader.num_workers={workers}' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.persistent_workers=False' for s in ('train', 'val', 'test')]
    return options


def cfg_options(options) -> dict:
    """``KEY=VALUE`` strings as the dict ``--cfg-options`` gives (mmengine's parsing)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--options', *options]).options if options else {}


def load_script(path: str):
    """A script of the repository (``benchmarks/x.py``) as a module, without putting
    its folder on ``sys.path``."""
    import importlib.util
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
