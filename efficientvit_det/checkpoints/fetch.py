"""Where checkpoints come from: local paths, URLs (cached), the papers' releases
(``release:``) and timm's copies on the Hugging Face hub (``hub:``, ``hf-hub:``)."""
import os

import torch

from ..errors import CheckpointDownloadError, UnknownCheckpointError
from ..fileio import atomic_path

CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'efficientvit_det', 'checkpoints')

_SHVIT_RELEASES = 'https://github.com/ysj9909/SHViT/releases/download/v1.0/'
_EFFICIENTVIT_RELEASES = ('https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/'
                          'releases/download/v1.0/')
#: The papers' releases (official layout): ImageNet-1k backbones under their
#: variant names, the COCO detectors (1x schedule) under their file names.
RELEASE_URLS = {
    **{f'shvit_{v}': f'{_SHVIT_RELEASES}shvit_{v}.pth' for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': f'{_EFFICIENTVIT_RELEASES}efficientvit_{v}.pth'
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
    **{name: f'{_SHVIT_RELEASES}{name}.pth'
       for name in ('maskrcnn_shvit_s4_1x_coco', 'retinanet_shvit_s4_1x_coco')},
    **{name: f'{_EFFICIENTVIT_RELEASES}{name}.pth'
       for name in ('mask_rcnn_efficientvit_m4_fpn_1x_coco',
                    'retinanet_efficientvit_m4_fpn_1x_coco')},
}
#: The same weights on the Hugging Face hub, in timm's layout.
HUB_IDS = {
    **{f'shvit_{v}': f'timm/shvit_{v}.in1k' for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': f'timm/efficientvit_{v}.r224_in1k'
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
}


def fetch_checkpoint(spec: str) -> str:
    """Resolve a checkpoint spec to a local file.

    ``spec`` is a path, an ``http(s)://`` URL (downloaded once into
    ``CACHE_DIR``), a Hugging Face hub id ``hf-hub:ORG/NAME``, a released
    backbone or detector with ``release:`` (``release:shvit_s4``,
    ``release:maskrcnn_shvit_s4_1x_coco``) or a backbone on the hub with ``hub:``.
    """
    if spec.startswith('release:'):
        name = spec[len('release:'):]
        if name not in RELEASE_URLS:
            raise UnknownCheckpointError(f'No released checkpoint for {name!r}; known: '
                                         f'{sorted(RELEASE_URLS)}')
        spec = RELEASE_URLS[name]
    if spec.startswith('hub:'):
        name = spec[len('hub:'):]
        if name not in HUB_IDS:
            raise UnknownCheckpointError(f'No hub checkpoint for {name!r}; known: '
                                         f'{sorted(HUB_IDS)}')
        spec = 'hf-hub:' + HUB_IDS[name]
    if spec.startswith('hf-hub:'):
        from huggingface_hub import hf_hub_download
        repo = spec[len('hf-hub:'):]
        try:
            return hf_hub_download(repo, 'model.safetensors')
        except OSError as err:  # offline, not cached, HTTP errors
            raise CheckpointDownloadError(
                f'Could not get model.safetensors of {repo} from the Hugging Face hub '
                f'({type(err).__name__}). Download https://huggingface.co/{repo}/resolve/main/'
                'model.safetensors by hand and give its local path instead.') from None
    if spec.startswith(('http://', 'https://')):
        target = os.path.join(CACHE_DIR, os.path.basename(spec.split('?')[0]))
        if not os.path.exists(target):
            try:
                with atomic_path(target) as partial:
                    torch.hub.download_url_to_file(spec, partial, progress=True)
            except OSError as err:  # URLError, HTTPError, timeouts
                raise CheckpointDownloadError(
                    f'Could not download {spec} ({err}). Download it by hand and put it at '
                    f'{target}, or give the local path instead.') from None
        return target
    return spec
