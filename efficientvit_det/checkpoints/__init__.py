"""Checkpoints: read safely, fetched from where they live, converted from the
layouts users bring, and fitted to a model strictly (torch only; mmengine optional)."""
from ..errors import (CheckpointDownloadError, CheckpointMismatchError,
                      UnknownCheckpointError, UnsafeCheckpointError)
from .fetch import CACHE_DIR, HUB_IDS, RELEASE_URLS, fetch_checkpoint
from .fit import (adapt_to_model, load_backbone_checkpoint, load_model_checkpoint,
                  read_checkpoint)
from .layouts import (convert_detector_checkpoint, convert_detector_state_dict, convert_key,
                      convert_state_dict, detect_detector_layout, detect_layout,
                      model_state_dict, resize_attention_biases, unwrap_state_dict)
from .safe_load import (InertObject, allowed_checkpoint_globals, load_checkpoint_file,
                        register_allow_list)

__all__ = [
    'CheckpointDownloadError', 'CheckpointMismatchError', 'UnknownCheckpointError',
    'UnsafeCheckpointError', 'CACHE_DIR', 'HUB_IDS', 'RELEASE_URLS', 'fetch_checkpoint',
    'adapt_to_model', 'load_backbone_checkpoint', 'load_model_checkpoint', 'read_checkpoint',
    'convert_detector_checkpoint', 'convert_detector_state_dict', 'convert_key',
    'convert_state_dict', 'detect_detector_layout', 'detect_layout', 'model_state_dict',
    'resize_attention_biases', 'unwrap_state_dict', 'InertObject',
    'allowed_checkpoint_globals', 'load_checkpoint_file', 'register_allow_list',
]
