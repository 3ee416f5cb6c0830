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
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..errors import DatasetError
from ..fileio import claim_folder

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
#: the file that marks a folder as the generator's own, which it may write over
TOY_DATA_MARKER = 'EFFICIENTVIT_DET_TOY_DATA'


@dataclass(frozen=True)
class CocoToyProfile:
    """What a generated COCO toy dataset looks like. Colour is drawn independently of
    the class in every profile: a shape's class is told by its shape alone."""
    name: str
    image_size: Tuple[int, int]  # (width, height)
    num_train: int
    num_val: int
    objects: Tuple[int, int]  # shapes per image, both ends included
    sizes: Tuple[float, float]  # a shape's size, as a fraction of the image's short side
    #: how much of a shape later shapes may cover (1.0: anything, even all of it)
    max_covered: float = 1.0
    #: every how many images one holds an iscrowd group (0: none)
    crowd_every: int = 8
    #: stripes across the background (edges that are no object's)
    stripes: bool = True
    #: least distance (RGB, 0-441) of a shape's colour from the background's mean
    #: under it: 0 lets a shape all but vanish into its background
    min_contrast: float = 0.0


#: the benchmark's toy set (benchmarks/toy_learning.py, the tests): small shapes, up to
#: four per image, any occlusion, empty and crowd images. Enough training images that
#: a CPU-budget run sees each about once (the earlier 96, seen 12 times, are part of
#: why that recipe learned 3x less; benchmarks/README.md)
BENCHMARK_PROFILE = CocoToyProfile(name='benchmark', image_size=(256, 192), num_train=1600,
                                   num_val=24, objects=(0, 4), sizes=(0.12, 0.45))
#: the demo's set, made for what a from-scratch detector learns in a few CPU minutes
#: (docs/datasets.md): one or two shapes of 86-154 pixels per image, at most a third
#: of one covered by the other, plain gradients behind them and a colour that stands
#: out from what is under it; still three classes told apart by shape alone
DEMO_PROFILE = CocoToyProfile(name='demo', image_size=(256, 192), num_train=960, num_val=50,
                              objects=(1, 2), sizes=(0.45, 0.8), max_covered=0.3,
                              crowd_every=0, stripes=False, min_contrast=80)
COCO_TOY_PROFILES = {profile.name: profile for profile in (BENCHMARK_PROFILE, DEMO_PROFILE)}
TOY_COCO_TRAIN_IMAGES = BENCHMARK_PROFILE.num_train
TOY_COCO_VAL_IMAGES = BENCHMARK_PROFILE.num_val
#: the built-in toy ADE20K dataset: as many training images for the same reason (the
#: earlier 96, seen 50 times by the toy Semantic FPN, were memorised, not learned)
TOY_ADE_TRAIN_IMAGES, TOY_ADE_VAL_IMAGES = 1600, 24


def split_rng(seed: int, split: str) -> np.random.Generator:
    """One random stream per split, so the val images stay the same whatever the
    size of the training split."""
    return np.random.default_rng([seed, ('train', 'val').index(split)])


def _background(rng, height, width, stripes=True) -> np.ndarray:
    """Smooth colour gradient (+ stripes) + noise: texture the model must ignore."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-0.3, 0.3, size=(2, 3))
    image = base + ys[..., None] * slope[0] + xs[..., None] * slope[1]
    if stripes:
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        waves = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
        image += waves[..., None] * rng.uniform(5, 25)
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


def _paint(image, mask, rng, min_contrast=0.0):
    colour = rng.uniform(0, 255, size=3)
    if min_contrast > 0:  # colour still drawn independently of the class
        under = image[mask > 0].reshape(-1, 3).mean(0)
        while np.linalg.norm(colour - under) < min_contrast:
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


def _scene(rng, height, width, objects=(0, 4), sizes=(0.12, 0.45), max_covered=1.0,
           stripes=True, min_contrast=0.0, min_visible=40):
    """One image: (image, [(kind, visible_mask)], owner map: which object is visible
    where). A shape that would cover more than ``max_covered`` of an earlier one is
    drawn again elsewhere (up to 20 tries, then left out)."""
    image = _background(rng, height, width, stripes)
    owner = np.full((height, width), -1, np.int32)
    kinds, areas = [], []
    for _ in range(rng.integers(objects[0], objects[1] + 1)):
        kind = ('circle', 'rectangle', 'triangle')[rng.integers(0, 3)]
        for _ in range(20 if max_covered < 1 else 1):
            mask = _shape_mask(rng, kind, height, width,
                               rng.uniform(*sizes) * min(height, width))
            if max_covered >= 1 or all(np.count_nonzero(mask[owner == i]) <= max_covered * area
                                       for i, area in enumerate(areas)):
                break
        else:
            continue
        _paint(image, mask, rng, min_contrast)
        owner[mask > 0] = len(kinds)  # later shapes occlude earlier ones
        kinds.append(kind)
        areas.append(int(mask.sum()))
    visible = [(kind, (owner == i).astype(np.uint8)) for i, kind in enumerate(kinds)]
    return image, [(kind, m) for kind, m in visible if m.sum() >= min_visible], owner


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


def make_coco_toy(root: str, num_train: Optional[int] = None, num_val: Optional[int] = None,
                  seed: int = 0, profile: CocoToyProfile = BENCHMARK_PROFILE) -> Dict[str, str]:
    """Write a COCO-format instance dataset of ``profile`` (its image counts unless
    given) under ``root``; returns its annotation files.

    Layout (as the toy configs expect): ``root/{train,val}/*.jpg`` and
    ``root/annotations/instances_{train,val}.json``.
    """
    if _toy_coco_info(root) is None:  # toy data from before the marker is known anyway
        claim_folder(root, TOY_DATA_MARKER, 'the toy data generator')
    profile = replace(profile, num_train=profile.num_train if num_train is None else num_train,
                      num_val=profile.num_val if num_val is None else num_val)
    width, height = profile.image_size
    info = dict(description=TOY_COCO_DESCRIPTION, version=TOY_DATA_VERSION, seed=seed,
                **asdict(profile))
    paths = {}
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train', profile.num_train), ('val', profile.num_val)):
        rng = split_rng(seed, split)
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            image_id = index + 1
            image, objects, owner = _scene(rng, height, width, profile.objects, profile.sizes,
                                           profile.max_covered, profile.stripes,
                                           profile.min_contrast)
            if profile.crowd_every and index % profile.crowd_every == 5:
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


def _toy_coco_info(root: str) -> Optional[dict]:
    """The info record of the toy COCO data at ``root`` (``{}`` for toy data from
    before the record, known by its categories); None where there is no val split or
    it is not toy data."""
    if not os.path.isfile(_val_annotations_path(root)):
        return None
    dataset = _val_annotations(root)
    found = dataset.get('info') or {}
    if found.get('description') == TOY_COCO_DESCRIPTION:
        return found
    return {} if not found and dataset.get('categories') == COCO_CATEGORIES else None


def toy_coco_splits(root: str) -> Optional[Tuple[int, int]]:
    """(training, val) image counts the toy COCO dataset at ``root`` was made with,
    from its info record; None where there is none (not toy data, or older)."""
    info = _toy_coco_info(root) or {}
    return (info['num_train'], info['num_val']) if 'num_val' in info else None


def toy_coco_mismatch(root: str, profile: CocoToyProfile = BENCHMARK_PROFILE) -> Optional[str]:
    """Why the toy COCO dataset at ``root`` needs (re)generating: missing, or made by
    another version of this generator. None if it is current, or if ``root`` holds a
    dataset that is not toy data (a user's own data is never replaced). Toy data of
    another profile is not replaced either (the other set may be wanted): refused."""
    ann_file = _val_annotations_path(root)
    if not os.path.exists(ann_file):
        return f'no {ann_file}'
    found = _toy_coco_info(root)
    if found is None:
        return None
    if found.get('version') != TOY_DATA_VERSION:
        return (f"found toy data of generator version {found.get('version', 1)}, "
                f'now {TOY_DATA_VERSION}')
    name = found.get('name', BENCHMARK_PROFILE.name)
    if name != profile.name:
        raise DatasetError(f'{root} holds the {name} toy set, not the {profile.name} one: '
                           'pass another --data-root (tools/make_toy_data.py --profile '
                           f'{profile.name} writes one)')
    return None


def make_ade_toy(root: str, num_train: int = TOY_ADE_TRAIN_IMAGES,
                 num_val: int = TOY_ADE_VAL_IMAGES,
                 image_size: Tuple[int, int] = (256, 192), max_objects: int = 4,
                 seed: int = 0) -> str:
    """Write an ADE20K-format segmentation dataset under ``root``.

    Background is class 1, the shapes classes 2-4; a thin unlabelled (0) border
    around every shape stands for ADE's unlabelled pixels.
    """
    claim_folder(root, TOY_DATA_MARKER, 'the toy data generator')
    width, height = image_size
    for split, folder, count in (('train', 'training', num_train),
                                 ('val', 'validation', num_val)):
        rng = split_rng(seed + 1, split)
        image_dir = os.path.join(root, 'images', folder)
        label_dir = os.path.join(root, 'annotations', folder)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(count):
            image, objects, _ = _scene(rng, height, width, (0, max_objects))
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
