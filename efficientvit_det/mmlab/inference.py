"""Predictions on a user's own images, folders and videos, through mmdet's
``DetInferencer`` and mmseg's ``MMSegInferencer`` (the scope is the config's).

The inferencers here differ from mmdet's / mmseg's in one way: the checkpoint must
fit the model exactly (theirs load what matches and warn, so another variant's
checkpoint gives confident nonsense). Unreadable images are skipped and listed,
never a crash half-way through a folder.
"""
import json
import os
from collections import Counter
import os.path as osp
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..checkpoints import adapt_to_model, model_state_dict
from ..errors import DatasetError, MissingWeightsError, UnreadableImageError
from ..fileio import check_outputs_apart
from .model_index import find_model, release_name, repo_root
from .pyramid import check_pyramid_strides
from .runner import safe_checkpoint_spec
from .scope import config_scope, read_config, registries
from .transforms import LoadImageOrSkip

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def _strict(inferencer_class):
    """``inferencer_class`` whose weights must fit the model exactly."""

    class Strict(inferencer_class):
        def __init__(self, model, weights=None, **kwargs):
            # named in a mismatch message as the user gave it
            self.weights_source = (weights[len('safe:'):] if str(weights).startswith('safe:')
                                   else weights)
            super().__init__(model=model, weights=weights, **kwargs)

        def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
            if checkpoint is not None:
                adapt_to_model(model, model_state_dict(checkpoint), 'efficientvit_det',
                               source=self.weights_source, resize_biases=False)
            super()._load_weights_to_model(model, checkpoint, cfg)
            meta = (checkpoint or {}).get('meta', {})
            classes = cfg.test_dataloader.dataset.get('metainfo', {}).get('classes')
            if classes and 'dataset_meta' not in meta and 'CLASSES' not in meta:
                # the config's class names, not mmdet's fallback to COCO's 80
                model.dataset_meta = dict(classes=tuple(classes))

    Strict.__name__ = Strict.__qualname__ = f'Strict{inferencer_class.__name__}'
    return Strict


def resolve_model(config: str, weights: Optional[str]) -> Tuple[str, str]:
    """(config file, weights) for a config file or a model-index name; a name's
    released weights unless ``weights`` is given."""
    if osp.isfile(config):
        if weights is None:
            raise MissingWeightsError(f'{config}: give the checkpoint to load with --weights')
        return config, weights
    model = find_model(config)
    if weights is None and 'Weights' not in model:
        raise MissingWeightsError(f'{model["Name"]} has no released weights; give yours with '
                                  '--weights')
    # release: goes through the safe loader, its cache and the papers' layout conversion
    weights = weights or f'release:{release_name(model["Weights"])}'
    return osp.join(repo_root(), model['Config']), weights


def build_inferencer(config: str, weights: Optional[str] = None, device: str = 'cpu'):
    """mmdet's ``DetInferencer`` or mmseg's ``MMSegInferencer`` for ``config`` (a file
    or a model-index name; the scope is its ``default_scope``), loading ``weights``
    strictly (a path, URL or ``release:``; a name's released weights by default)."""
    config, weights = resolve_model(config, weights)
    # through our allow-list loader (mmengine's would refuse a training checkpoint's
    # logged state under torch's weights_only default, and run code from others)
    weights = safe_checkpoint_spec(weights)
    cfg = read_config(config)
    if config_scope(cfg) == 'mmseg':
        from mmseg.apis import MMSegInferencer
        # its visualizer draws Cityscapes' 19 classes unless told the dataset's
        meta = dataset_metainfo(cfg)
        inferencer = _strict(MMSegInferencer)(model=cfg, weights=weights, device=device,
                                              classes=meta.get('classes'),
                                              palette=meta.get('palette'))
    else:
        from mmdet.apis import DetInferencer
        inferencer = _strict(DetInferencer)(model=cfg, weights=weights, device=device)
    check_pyramid_strides(inferencer.model)
    inferencer.show_progress = False  # run_inference counts the whole folder instead
    return inferencer


def dataset_metainfo(cfg) -> dict:
    """Class names and palette of the config's test dataset: its class defaults
    updated with the config's ``metainfo``."""
    dataset = cfg.test_dataloader.dataset
    dataset_class = registries(cfg).DATASETS.get(dataset.type)
    return dict(getattr(dataset_class, 'METAINFO', {}), **dataset.get('metainfo', {}))


def is_segmentation(inferencer) -> bool:
    return config_scope(inferencer.cfg) == 'mmseg'


# ----------------------------------------------------------------------------- inputs

def list_inputs(source: str) -> Tuple[str, List[str]]:
    """('images', paths) for an image or a folder, ('video', [path]) for a video."""
    if osp.isdir(source):
        paths = sorted(osp.join(source, n) for n in os.listdir(source)
                       if n.lower().endswith(IMAGE_SUFFIXES))
        if not paths:
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {source}')
        return 'images', paths
    if not osp.isfile(source):
        raise FileNotFoundError(f'input not found: {source} (an image, a folder of images '
                                'or a video)')
    if source.lower().endswith(VIDEO_SUFFIXES):
        import cv2
        capture = cv2.VideoCapture(source)
        readable = capture.isOpened() and capture.read()[0]
        capture.release()
        if not readable:  # found now, not after the model is built
            raise UnreadableImageError(f'{source}: not a video OpenCV can read (truncated, '
                                       'or a codec this OpenCV lacks): re-encode it, e.g. as '
                                       'H.264 MP4, or pass its frames as images')
        return 'video', [source]
    return 'images', [source]


def read_frames(video: str) -> Iterator[np.ndarray]:
    import cv2
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise UnreadableImageError(f'{video}: not a video OpenCV can read')
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


# ----------------------------------------------------------------------------- outputs

def coco_results(prediction: dict, image_id: int, category_ids: List[int]) -> List[dict]:
    """A ``DetInferencer`` prediction as COCO result entries (``loadRes`` format)."""
    entries = []
    masks = prediction.get('masks') or [None] * len(prediction['labels'])
    for label, score, (x1, y1, x2, y2), mask in zip(prediction['labels'], prediction['scores'],
                                                    prediction['bboxes'], masks):
        entry = dict(image_id=image_id, category_id=category_ids[label], score=float(score),
                     bbox=[x1, y1, x2 - x1, y2 - y1])
        if mask is not None:
            entry['segmentation'] = mask
        entries.append(entry)
    return entries


def image_ids_from(ann_file: Optional[str], classes) -> Tuple[dict, List[int]]:
    """(file name -> image id, label -> category id) from a COCO annotation file,
    so the predictions can be scored against it; without one, images are numbered
    in order and labels are the category ids."""
    if not ann_file:
        return {}, list(range(len(classes)))
    with open(ann_file) as f:
        coco = json.load(f)
    by_name = {c['name']: c['id'] for c in coco['categories']}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise DatasetError(f'{ann_file} has no categories named {missing}; it has '
                           f'{sorted(by_name)}')
    return ({osp.basename(i['file_name']): i['id'] for i in coco['images']},
            [by_name[c] for c in classes])


def run_inference(inferencer, source: str, out_dir: str, score_thr: float = 0.3,
                  ann_file: Optional[str] = None) -> dict:
    """Predict every image of ``source`` (an image, folder or video); writes drawn
    images (``vis/``, or one ``.mp4`` for a video), and ``predictions.json`` (COCO
    results, every detection whatever its score) or label maps (``pred/*.png``).
    Returns a summary: counts, skipped files, output paths."""
    import mmcv
    from mmengine.utils import ProgressBar
    kind, paths = list_inputs(source)
    segmentation = is_segmentation(inferencer)
    classes = inferencer.model.dataset_meta['classes']
    names_to_ids, category_ids = image_ids_from(None if segmentation else ann_file, classes)
    stems = output_stems(paths)
    planned = ([osp.join(out_dir, stems[paths[0]] + '.mp4')] if kind == 'video' else
               [osp.join(out_dir, 'vis', stem + '.jpg') for stem in stems.values()])
    if segmentation and kind != 'video':
        planned += [osp.join(out_dir, 'pred', stem + '.png') for stem in stems.values()]
    check_outputs_apart(paths, planned + [osp.join(out_dir, 'predictions.json')])
    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    if kind == 'video':
        named = ((f'frame_{i:06d}', frame) for i, frame in enumerate(read_frames(paths[0])))
        total = _frame_count(paths[0])  # a container's estimate: only for the progress bar
    else:
        named, total = ((p, None) for p in paths), len(paths)
    results, skipped, unlisted, writer, done = [], [], [], None, 0
    progress = ProgressBar(total) if total > 0 else None
    for index, (name, frame) in enumerate(named):
        image = frame if frame is not None else _read(name, skipped)
        if progress and index < total:
            progress.update()
        if image is None:
            continue
        done += 1
        output = inferencer(image, return_vis=True, **({} if segmentation else dict(
            no_save_vis=True, pred_score_thr=score_thr)))
        # mmseg returns a single image's results unwrapped, mmdet as a list of one
        drawn, prediction = (value[0] if isinstance(value, list) else value
                             for value in (output['visualization'], output['predictions']))
        drawn = drawn[:, :, ::-1]  # RGB -> BGR for writing
        stem = stems.get(name) or name  # a video's frames: frame_NNNNNN
        if kind == 'video':
            writer = writer or _video_writer(paths[0], out_dir, drawn.shape)
            writer.write(np.ascontiguousarray(drawn))
        else:
            mmcv.imwrite(drawn, osp.join(out_dir, 'vis', stem + '.jpg'))
        if segmentation:
            mmcv.imwrite(np.asarray(prediction, np.uint8),
                         osp.join(out_dir, 'pred', stem + '.png'))
        elif names_to_ids and osp.basename(name) not in names_to_ids:
            unlisted.append(name)  # no image id to score it under: drawn, not in the JSON
        else:
            image_id = names_to_ids.get(osp.basename(name), index)
            results.extend(coco_results(prediction, image_id, category_ids))
    if writer is not None:
        writer.release()
    summary = dict(images=done, skipped=skipped, not_in_ann_file=unlisted, out_dir=out_dir)
    if not segmentation:
        summary['predictions'] = osp.join(out_dir, 'predictions.json')
        with open(summary['predictions'], 'w') as f:
            json.dump(results, f)
        summary['detections'] = len(results)
    return summary


def output_stems(paths: List[str]) -> dict:
    """Each input's output name: its file name without the extension, or with it
    (``a_png``) where two inputs share a stem (``a.jpg``, ``a.png``), so that no
    drawing replaces another."""
    def stem(path):
        return osp.splitext(osp.basename(path))[0]
    counts = Counter(stem(path) for path in paths)
    return {path: stem(path) if counts[stem(path)] == 1 else
            osp.basename(path).replace('.', '_') for path in paths}


def _read(path: str, skipped: List[str]) -> Optional[np.ndarray]:
    """The image (BGR) through the training pipelines' loader, which names an
    unreadable file in a warning and gives None; listed in ``skipped`` then."""
    loaded = LoadImageOrSkip()(dict(img_path=path))
    if loaded is None:
        skipped.append(path)
        return None
    return loaded['img']


def _frame_count(video: str) -> int:
    import cv2
    capture = cv2.VideoCapture(video)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return max(count, 0)


def _video_writer(video: str, out_dir: str, shape):
    import cv2
    capture = cv2.VideoCapture(video)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25
    capture.release()
    path = osp.join(out_dir, osp.splitext(osp.basename(video))[0] + '.mp4')
    return cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (shape[1], shape[0]))
