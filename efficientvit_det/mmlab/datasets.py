"""Dataset checks run before any worker starts: the paths a config names exist,
and a COCO annotation file is consistent (a mistake there otherwise crashes deep
inside mmdet or a dataloader worker, or is silently dropped)."""
import json
import logging
import os.path as osp
from collections import Counter
from typing import Iterator, List, Tuple

from mmengine.logging import print_log

from ..errors import DatasetError, DatasetNotFoundError
from ..fileio import check_outputs_apart

DATASET_HINTS = {
    'CocoDataset': ('COCO 2017', 'data/coco/{annotations,train2017,val2017}'),
    'ADE20KDataset': ('ADE20K (ADEChallengeData2016)',
                      'data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}'),
}


def _datasets(cfg) -> Iterator[dict]:
    """Leaf dataset configs, looking through wrappers (Repeat/Concat/ClassBalanced)."""
    if isinstance(cfg, dict):
        if 'dataset' in cfg and isinstance(cfg['dataset'], dict):
            yield from _datasets(cfg['dataset'])
        elif 'datasets' in cfg:
            for sub in cfg['datasets']:
                yield from _datasets(sub)
        else:
            yield cfg


def _join(root: str, path: str) -> str:
    return path if osp.isabs(path) or not root else osp.join(root, path)


def expected_paths(dataset: dict) -> List[str]:
    root = dataset.get('data_root', '') or ''
    paths = []
    if dataset.get('ann_file'):
        paths.append(_join(root, dataset['ann_file']))
    for prefix in (dataset.get('data_prefix') or {}).values():
        if isinstance(prefix, str) and prefix:
            paths.append(_join(root, prefix))
    if not paths and root:
        paths.append(root)
    return paths


#: annotation files up to this size get the full consistency check
DEEP_CHECK_BYTES = 100 * 2 ** 20


def check_coco_annotations(ann_file: str, image_dir: str, split: str,
                           with_masks: bool = False) -> None:
    """Catch what would otherwise crash deep inside mmdet / a dataloader worker, and
    say what mmdet will do with annotations it drops or changes."""
    if osp.getsize(ann_file) > DEEP_CHECK_BYTES:
        print_log(f'{ann_file}: large file, annotation consistency check skipped',
                  logger='current', level=logging.INFO)
        return
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f'{ann_file} is not valid JSON: {err}') from None
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise DatasetError(f'{ann_file} has no "{key}" list: not a COCO instances file')
    if not coco['annotations']:
        raise DatasetError(f'{ann_file} ({split} split) has an empty "annotations" list: '
                           'nothing to train on or evaluate against')
    categories = {c['id'] for c in coco['categories']}
    images = {i['id']: i for i in coco['images']}
    if len(images) < len(coco['images']):
        # pycocotools keeps the last entry of an id: the first image's ground truth
        # would be paired with another file and the first never evaluated, silently
        counts = Counter(image['id'] for image in coco['images'])
        repeated = [image_id for image_id, count in counts.items() if count > 1]
        raise DatasetError(f'{ann_file}: image id(s) {repeated[:5]} listed more than once in '
                           '"images"; give each image its own id')
    bad_category = [a for a in coco['annotations'] if a.get('category_id') not in categories]
    if bad_category:
        raise DatasetError(
            f'{ann_file}: {len(bad_category)} annotation(s) use a category id missing from '
            f'"categories" {sorted(categories)}, e.g. annotation {bad_category[0].get("id")} '
            f'with category_id={bad_category[0].get("category_id")}')
    orphans = [a for a in coco['annotations'] if a.get('image_id') not in images]
    if orphans:
        raise DatasetError(f'{ann_file}: {len(orphans)} annotation(s) point at image ids not in '
                           f'"images", e.g. annotation {orphans[0].get("id")} -> image_id='
                           f'{orphans[0].get("image_id")}')
    _check_geometry(ann_file, coco['annotations'], images, with_masks)
    _check_image_files(ann_file, coco['images'], image_dir, split)


def _ids(annotations: list) -> str:
    shown = ', '.join(str(a.get('id')) for a in annotations[:5])
    return shown + (', ...' if len(annotations) > 5 else '')


def _check_geometry(ann_file: str, annotations: list, images: dict, with_masks: bool) -> None:
    """mmdet's CocoDataset drops boxes under 1 px, of zero area or outside their image,
    and Resize clips boxes that extend beyond it; an annotation without a box or an
    area, or (for mask training) without a segmentation, crashes a worker."""
    unusable, dropped, outside, clipped = [], [], [], []
    for ann in annotations:
        if ann.get('ignore', False):  # mmdet skips these before reading anything
            continue
        box = ann.get('bbox')
        if not (isinstance(box, (list, tuple)) and len(box) == 4) or 'area' not in ann:
            unusable.append((ann, 'no "bbox" [x, y, w, h] or no "area"'))
            continue
        x, y, w, h = box
        image = images[ann['image_id']]
        if 'width' not in image or 'height' not in image:
            raise DatasetError(f'{ann_file}: image {image["id"]} ({image.get("file_name")}) '
                               'has no "width" / "height"')
        inside_w = min(x + w, image['width']) - max(x, 0)
        inside_h = min(y + h, image['height']) - max(y, 0)
        if inside_w <= 0 or inside_h <= 0:
            outside.append(ann)
        elif ann['area'] <= 0 or w < 1 or h < 1:
            dropped.append(ann)
        else:
            if x < 0 or y < 0 or x + w > image['width'] or y + h > image['height']:
                clipped.append(ann)
            if with_masks and not ann.get('segmentation'):
                unusable.append((ann, 'an empty "segmentation" (mask training needs one)'))
    if unusable:
        ann, why = unusable[0]
        raise DatasetError(
            f'{ann_file}: {len(unusable)} annotation(s) cannot be loaded, e.g. annotation '
            f'{ann.get("id")} (image_id={ann.get("image_id")}) has {why}; ids: '
            f'{_ids([a for a, _ in unusable])}. Fix them or remove them from the file.')
    for found, fate in ((dropped, 'have a box under 1 px or zero area: mmdet drops them'),
                        (outside, 'lie outside their image: mmdet drops them'),
                        (clipped, 'extend beyond their image: their boxes are clipped to it')):
        if found:
            print_log(f'{ann_file}: {len(found)} annotation(s) {fate} (ids {_ids(found)})',
                      logger='current', level=logging.WARNING)


def _check_image_files(ann_file: str, image_infos: list, image_dir: str, split: str) -> None:
    names = [i['file_name'] for i in image_infos]
    missing = [n for n in names if not osp.exists(osp.join(image_dir, n))]
    if missing:
        raise DatasetError(f'{ann_file}: {len(missing)} image file(s) listed but not found '
                           f'under {image_dir}, e.g. {missing[0]}')
    paths = [osp.join(image_dir, n) for n in names]
    empty = [p for p in paths if osp.getsize(p) == 0]
    if not empty:
        return
    shown = ', '.join(empty[:3]) + (', ...' if len(empty) > 3 else '')
    if split == 'train':
        print_log(f'{ann_file}: {len(empty)} image file(s) are empty (0 bytes) and will be '
                  f'skipped in training: {shown}', logger='current', level=logging.WARNING)
        return
    raise DatasetError(f'{ann_file}: {len(empty)} image file(s) are empty (0 bytes), so the '
                       f'{split} split cannot be evaluated: {shown}. Replace them or remove '
                       'them from the file.')


def check_dataset_paths(cfg, splits: Tuple[str, ...]) -> None:
    """Fail early, naming the first missing path and how to point elsewhere, and
    check small COCO annotation files for consistency."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader.get('dataset')):
            for path in expected_paths(dataset):
                if not osp.exists(path):
                    raise DatasetNotFoundError(_missing_message(split, dataset, path))
            if dataset.get('type') == 'CocoDataset' and dataset.get('ann_file'):
                root = dataset.get('data_root', '') or ''
                image_dir = _join(root, (dataset.get('data_prefix') or {}).get('img', ''))
                check_coco_annotations(_join(root, dataset['ann_file']), image_dir, split,
                                       with_masks=_loads_masks(dataset))
        evaluator = cfg.get(f'{split}_evaluator')
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann_file and not osp.exists(ann_file):
                raise DatasetNotFoundError(
                    f'{split}_evaluator annotation file not found: {ann_file}\n'
                    f'Point it at yours: --cfg-options {split}_evaluator.ann_file=PATH')


def check_outputs_outside_dataset(cfg, split: str, folders: dict) -> None:
    """Refuse an output folder (``{flag: folder}``) that is one of the ``split``
    dataset's folders or files: drawings and label maps are named after the images,
    so they would replace the images or the ground truth there."""
    loader = cfg.get(f'{split}_dataloader') or {}
    inputs = [path for dataset in _datasets(loader.get('dataset'))
              for path in expected_paths(dataset)]
    for flag, folder in folders.items():
        if folder:
            check_outputs_apart(inputs, [folder], flag)


def _loads_masks(dataset: dict) -> bool:
    return any(isinstance(t, dict) and t.get('type') == 'LoadAnnotations' and t.get('with_mask')
               for t in dataset.get('pipeline') or [])


def _missing_message(split: str, dataset: dict, path: str) -> str:
    kind = dataset.get('type', 'dataset')
    name, layout = DATASET_HINTS.get(kind, (kind, None))
    lines = [f'{name} not found: {path} (needed by {split}_dataloader, {kind} with '
             f'data_root={dataset.get("data_root")!r}).']
    if layout:
        lines.append(f'Expected layout: {layout}.')
    keys = ' '.join(f'{s}_dataloader.dataset.data_root=/your/root/' for s in ('train', 'val', 'test'))
    lines.append(f'Put the dataset there, or point the config at another root: --cfg-options {keys}')
    if kind == 'CocoDataset':
        lines.append('(and val_evaluator.ann_file=... test_evaluator.ann_file=... for COCO metrics)')
    lines.append('No dataset at hand? `make demo` trains on a generated toy dataset.')
    return '\n'.join(lines)
