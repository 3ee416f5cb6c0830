"""Small deterministic datasets in the real formats, for the demo and the tests.

* COCO instances: JPEG images of shapes (circle, rectangle, triangle) with
  varied colour and size on textured backgrounds; shapes overlap and occlude one
  another (annotations are the *visible* parts); masks are polygons or RLE; some
  images have no object; a few images hold an ``iscrowd`` group.
* ADE20K semantic segmentation: ``images/{training,validation}/*.jpg`` and
  ``annotations/.../*.png`` with ADE's label convention (0 = unlabelled, ignored
  after ``reduce_zero_label``; 1..150 classes).
"""
import json
import os
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

COCO_CATEGORIES = [dict(id=1, name='circle', supercategory='shape'),
                   dict(id=2, name='rectangle', supercategory='shape'),
                   dict(id=3, name='triangle', supercategory='shape')]
#: ADE20K label ids (1-based, before reduce_zero_label) used by the toy scenes
ADE_BACKGROUND, ADE_SHAPE_LABELS = 1, {'circle': 2, 'rectangle': 3, 'triangle': 4}
#: what the toy classes are, by the ADE20K names of their labels (the names under
#: which mmseg reports per-class results: labels 1-4 are ADE's first four classes)
ADE_TOY_CLASS_NAMES = {'wall': 'background', 'building': 'circle', 'sky': 'rectangle',
                       'floor': 'triangle'}


#: changes whenever the generator's output does: the demo regenerates toy data it
#: finds from another version (see ``toy_coco_mismatch``)
TOY_DATA_VERSION = 2
TOY_COCO_DESCRIPTION = 'efficientvit_det toy shapes'
#: the built-in toy COCO dataset: enough training images that a CPU-budget run sees
#: each about once (the earlier 96, seen 12 times, are part of why that recipe
#: learned 3x less; benchmarks/README.md)
TOY_COCO_TRAIN_IMAGES, TOY_COCO_VAL_IMAGES = 1600, 24
#: the built-in toy ADE20K dataset: as many training images for the same reason (the
#: earlier 96, seen 50 times by the toy Semantic FPN, were memorised, not learned)
TOY_ADE_TRAIN_IMAGES, TOY_ADE_VAL_IMAGES = 1600, 24


def split_rng(seed: int, split: str) -> np.random.Generator:
    """One random stream per split, so the val images stay the same whatever the
    size of the training split."""
    return np.random.default_rng([seed, ('train', 'val').index(split)])


def _background(rng, height, width) -> np.ndarray:
    """Smooth colour gradient + stripes + noise: texture the model must ignore."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-0.3, 0.3, size=(2, 3))
    image = base + ys[..., None] * slope[0] + xs[..., None] * slope[1]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    image += stripes[..., None] * rng.uniform(5, 25)
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_mask(rng, kind: str, height: int, width: int, size: float) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2)
    if kind == 'circle':
        cv2.circle(mask, (int(cx), int(cy)), int(size / 2), 1, -1)
    elif kind == 'rectangle':
        w, h = size * rng.uniform(0.6, 1.0), size * rng.uniform(0.6, 1.0)
        rect = ((cx, cy), (w, h), rng.uniform(0, 90))
        cv2.fillPoly(mask, [cv2.boxPoints(rect).astype(np.int32)], 1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        points = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], 1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    return mask


def _paint(image, mask, rng):
    colour = rng.uniform(0, 255, size=3)
    shade = rng.normal(0, 6, size=image.shape)
    image[mask > 0] = np.clip(colour + shade[mask > 0], 0, 255).astype(np.uint8)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _scene(rng, height, width, max_objects, min_visible=40):
    """One image: (image, [(kind, visible_mask)], crowd_mask or None)."""
    image = _background(rng, height, width)
    owner = np.full((height, width), -1, np.int32)  # which object is visible where
    kinds = []
    for index in range(rng.integers(0, max_objects + 1)):
        kind = ('circle', 'rectangle', 'triangle')[rng.integers(0, 3)]
        mask = _shape_mask(rng, kind, height, width, rng.uniform(0.12, 0.45) * min(height, width))
        _paint(image, mask, rng)
        owner[mask > 0] = index  # later shapes occlude earlier ones
        kinds.append(kind)
    objects = [(kind, (owner == i).astype(np.uint8)) for i, kind in enumerate(kinds)]
    objects = [(kind, m) for kind, m in objects if m.sum() >= min_visible]
    return image, objects, owner


def _crowd(rng, image, owner, height, width):
    """A cluster of tiny circles annotated as a single iscrowd region."""
    crowd = np.zeros((height, width), np.uint8)
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    for _ in range(12):
        x, y = int(cx + rng.normal(0, 10)), int(cy + rng.normal(0, 10))
        cv2.circle(crowd, (x, y), 3, 1, -1)
    crowd[owner >= 0] = 0
    _paint(image, crowd, rng)
    return crowd


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]


def make_coco_toy(root: str, num_train: int = TOY_COCO_TRAIN_IMAGES,
                  num_val: int = TOY_COCO_VAL_IMAGES,
                  image_size: Tuple[int, int] = (256, 192), max_objects: int = 4,
                  seed: int = 0) -> Dict[str, str]:
    """Write a COCO-format instance dataset under ``root``; returns its paths.

    Layout (as the toy configs expect): ``root/{train,val}/*.jpg`` and
    ``root/annotations/instances_{train,val}.json``.
    """
    width, height = image_size
    info = dict(description=TOY_COCO_DESCRIPTION, version=TOY_DATA_VERSION, num_train=num_train,
                num_val=num_val, image_size=list(image_size), max_objects=max_objects, seed=seed)
    paths = {}
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train', num_train), ('val', num_val)):
        rng = split_rng(seed, split)
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            image_id = index + 1
            image, objects, owner = _scene(rng, height, width, max_objects)
            if index % 8 == 5:  # some images hold an iscrowd group
                crowd = _crowd(rng, image, owner, height, width)
                if crowd.sum() > 0:
                    annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                            category_id=1, iscrowd=1, segmentation=_rle(crowd),
                                            area=float(crowd.sum()), bbox=_bbox(crowd)))
            file_name = f'{split}_{index:05d}.jpg'
            cv2.imwrite(os.path.join(root, split, file_name), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
            for number, (kind, mask) in enumerate(objects):
                use_rle = (index + number) % 3 == 0  # mix both mask encodings
                segmentation = _rle(mask) if use_rle else _polygons(mask)
                if not segmentation:
                    continue
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id,
                    category_id=1 + ('circle', 'rectangle', 'triangle').index(kind),
                    iscrowd=0, segmentation=segmentation, area=float(mask.sum()),
                    bbox=_bbox(mask)))
        ann_file = os.path.join(root, 'annotations', f'instances_{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(dict(info=info, images=images, annotations=annotations,
                           categories=COCO_CATEGORIES), f)
        paths[split] = ann_file
    return paths


def _val_annotations_path(root: str) -> str:
    return os.path.join(root, 'annotations', 'instances_val.json')


def _val_annotations(root: str) -> dict:
    """The val split's annotations, whose info record says what made the data."""
    with open(_val_annotations_path(root)) as f:
        return json.load(f)


def toy_coco_splits(root: str) -> Optional[Tuple[int, int]]:
    """(training, val) image counts the toy COCO dataset at ``root`` was made with,
    from its info record; None where there is none (not toy data, or older)."""
    info = _val_annotations(root).get('info') or {}
    if info.get('description') != TOY_COCO_DESCRIPTION or 'num_val' not in info:
        return None
    return info['num_train'], info['num_val']


def toy_coco_mismatch(root: str) -> Optional[str]:
    """Why the toy COCO dataset at ``root`` needs (re)generating: missing, or made by
    another version of this generator. None if it is current, or if ``root`` holds a
    dataset that is not toy data (a user's own data is never replaced)."""
    ann_file = _val_annotations_path(root)
    if not os.path.exists(ann_file):
        return f'no {ann_file}'
    dataset = _val_annotations(root)
    found = dataset.get('info') or {}
    # toy data from before the info record is known by its categories
    is_toy = (found.get('description') == TOY_COCO_DESCRIPTION
              or (not found and dataset.get('categories') == COCO_CATEGORIES))
    if not is_toy:
        return None
    if found.get('version') != TOY_DATA_VERSION:
        return (f"found toy data of generator version {found.get('version', 1)}, "
                f'now {TOY_DATA_VERSION}')
    return None


def make_ade_toy(root: str, num_train: int = TOY_ADE_TRAIN_IMAGES,
                 num_val: int = TOY_ADE_VAL_IMAGES,
                 image_size: Tuple[int, int] = (256, 192), max_objects: int = 4,
                 seed: int = 0) -> str:
    """Write an ADE20K-format segmentation dataset under ``root``.

    Background is class 1, the shapes classes 2-4; a thin unlabelled (0) border
    around every shape stands for ADE's unlabelled pixels.
    """
    width, height = image_size
    for split, folder, count in (('train', 'training', num_train),
                                 ('val', 'validation', num_val)):
        rng = split_rng(seed + 1, split)
        image_dir = os.path.join(root, 'images', folder)
        label_dir = os.path.join(root, 'annotations', folder)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(count):
            image, objects, _ = _scene(rng, height, width, max_objects)
            label = np.full((height, width), ADE_BACKGROUND, np.uint8)
            edges = np.zeros((height, width), np.uint8)
            for kind, mask in objects:
                label[mask > 0] = ADE_SHAPE_LABELS[kind]
                edges |= cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            label[edges > 0] = 0
            name = f'ADE_{split}_{index:08d}'
            cv2.imwrite(os.path.join(image_dir, name + '.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(os.path.join(label_dir, name + '.png'), label)
    return root
