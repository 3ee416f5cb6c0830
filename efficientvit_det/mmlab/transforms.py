"""``LoadImageOrSkip``: the image loader of our configs' training pipelines.

mmcv's ``LoadImageFromFile`` fails on an unreadable image with an assertion or a
bare ``cv2.error`` (a zero-byte file) deep in a dataloader worker, or, with
``ignore_empty=True``, skips it without a word. This one names the file: in
training it logs a warning and returns None, so the dataset draws another sample;
with ``skip=False`` it raises ``IOError`` naming it. Test pipelines keep mmcv's
loader under its own name, so mmdet's and mmseg's inferencers recognise them.

An image whose size differs from the one its annotation file lists (a resized or
replaced file) is named too: its boxes and masks would not fit it, and mmdet
fails later in a mask operation that names no file.
"""
import logging
import os.path as osp

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

from ..errors import DatasetError


class LoadImageOrSkip(LoadImageFromFile):

    def __init__(self, skip: bool = True, **kwargs):
        kwargs.pop('ignore_empty', None)  # every failure reaches transform()
        super().__init__(ignore_empty=False, **kwargs)
        self.skip = skip

    def transform(self, results: dict):
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except Exception as err:  # cv2.error (an empty file) is no OSError
            if osp.isfile(filename) and osp.getsize(filename) == 0:
                reason = 'empty file, 0 bytes'
            else:
                last_line = (str(err).strip().splitlines() or [''])[-1]
                reason = f'{type(err).__name__}: {last_line}' if last_line else repr(err)
        else:
            listed = (results.get('height'), results.get('width'))
            if None in listed or tuple(loaded['img'].shape[:2]) == listed:
                return loaded
            raise DatasetError(f'image {filename} is {loaded["img"].shape[0]}x'
                               f'{loaded["img"].shape[1]} (HxW) but its annotation file says '
                               f'{listed[0]}x{listed[1]}: restore the original file, or fix '
                               'its width / height in the annotations')
        message = f'cannot read image {filename} ({reason})'
        if self.skip:
            print_log(f'{message}: skipped', logger='current', level=logging.WARNING)
            return None
        raise IOError(message)
