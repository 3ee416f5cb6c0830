"""tools/infer.py and the inferencers: predictions on folders and videos, the same
detections as tools/test.py, strict weights, unreadable images listed."""
import json
import os
import pickle
import subprocess
import sys

import cv2
import mmcv
import numpy as np
import pytest
import torch

from efficientvit_det.cli import infer
from efficientvit_det.cli.common import run
from efficientvit_det.cli import test as test_tool
from efficientvit_det.mmlab.scope import build_model_from_config
from efficientvit_det.mmlab.toy_data import make_coco_toy
from tests.support import ROOT, TOY_MASK_RCNN as TOY_CONFIG, randomize_, toy_options


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """Toy COCO plus a checkpoint with non-trivial weights (random BatchNorm statistics
    and attention biases), so the two code paths have real detections to agree on."""
    root = tmp_path_factory.mktemp('infer')
    make_coco_toy(str(root / 'coco'), num_train=4, num_val=4, seed=3)
    torch.manual_seed(0)
    model = randomize_(build_model_from_config(TOY_CONFIG), seed=1)
    checkpoint = root / 'toy.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return root, checkpoint


@pytest.mark.slow
def test_predictions_equal_the_test_tools_and_score_the_same(toy, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    root, checkpoint = toy
    ann_file = str(root / 'coco' / 'annotations' / 'instances_val.json')
    dumped = tmp_path / 'test.pkl'
    metrics = test_tool.test_main([TOY_CONFIG, str(checkpoint), '--out', str(dumped), '--work-dir',
                                   str(tmp_path / 'test'), '--cfg-options', *toy_options(root / 'coco')])
    summary = infer.main([str(root / 'coco' / 'val'), TOY_CONFIG, '--weights', str(checkpoint),
                          '--out-dir', str(tmp_path / 'out'), '--ann-file', ann_file,
                          '--score-thr', '0'])
    results = json.load(open(summary['predictions']))
    assert summary['images'] == 4 and not summary['skipped'] and results

    reference = pickle.load(open(dumped, 'rb'))
    for image in reference:
        theirs = image['pred_instances']
        ours = list((r['score'], *r['bbox'][:2], r['bbox'][0] + r['bbox'][2],
                     r['bbox'][1] + r['bbox'][3], r['category_id'], r['segmentation']['counts'])
                    for r in results if r['image_id'] == image['img_id'])
        expected = list((score, *box, label, mask['counts'])
                        for score, box, label, mask in zip(
                              theirs['scores'].tolist(), theirs['bboxes'].tolist(),
                              theirs['labels'].tolist(), theirs['masks']))
        assert len(ours) == len(expected) > 0

        def rounded(row):
            return [round(value, 3) for value in row[:5]]
        ours, expected = sorted(ours, key=rounded), sorted(expected, key=rounded)
        for mine, reference_row in zip(ours, expected):  # sorted: tied scores in any order
            assert np.allclose(mine[:5], reference_row[:5], atol=1e-3)
            assert mine[5] == reference_row[5] + 1  # toy category ids start at 1
            assert mine[6] == (reference_row[6].decode() if isinstance(reference_row[6], bytes)
                               else reference_row[6])
    coco = COCO(ann_file)
    for kind in ('bbox', 'segm'):
        evaluation = COCOeval(coco, coco.loadRes(results), kind)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert round(evaluation.stats[0], 3) == pytest.approx(metrics[f'coco/{kind}_mAP'])

    for name in sorted(os.listdir(root / 'coco' / 'val')):  # boxes drawn (threshold 0)
        drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / name))
        original = mmcv.imread(str(root / 'coco' / 'val' / name))
        assert np.abs(drawn.astype(int) - original).mean() > 5


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_listed(toy, tmp_path):
    root, checkpoint = toy
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in sorted(os.listdir(root / 'coco' / 'val'))[:2]:
        (folder / name).write_bytes((root / 'coco' / 'val' / name).read_bytes())
    (folder / 'a_corrupt.jpg').write_bytes(b'not a jpeg')
    (folder / 'b_empty.png').write_bytes(b'')
    result = subprocess.run(
        [sys.executable, 'tools/infer.py', str(folder), TOY_CONFIG, '--weights', str(checkpoint),
         '--out-dir', str(tmp_path / 'out'), '--score-thr', '0.9'], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'skipped 2 unreadable image(s): {folder / "a_corrupt.jpg"}, {folder / "b_empty.png"}' \
        in result.stderr
    assert '2 image(s) -> ' in result.stdout
    assert len(os.listdir(tmp_path / 'out' / 'vis')) == 2
    scores = [r['score'] for r in json.load(open(tmp_path / 'out' / 'predictions.json'))]
    assert min(scores) < 0.9  # the JSON keeps what --score-thr leaves undrawn


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_is_refused(toy, tmp_path):
    root, checkpoint = toy
    state = torch.load(checkpoint)['state_dict']
    state.pop('roi_head.mask_head.conv_logits.bias')
    broken = tmp_path / 'broken.pth'
    torch.save({'state_dict': state}, broken)
    result = subprocess.run(
        [sys.executable, 'tools/infer.py', str(root / 'coco' / 'val'), TOY_CONFIG, '--weights',
         str(broken), '--out-dir', str(tmp_path / 'out')], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert f'error: {broken}' in result.stderr
    assert 'missing keys: 1 [roi_head.mask_head.conv_logits.bias]' in result.stderr


@pytest.mark.slow
def test_video_frames_are_predicted_and_written(toy, tmp_path):
    root, checkpoint = toy
    video = str(tmp_path / 'clip.mp4')
    names = sorted(os.listdir(root / 'coco' / 'val'))[:3]
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, (256, 192))
    for name in names:
        writer.write(mmcv.imread(str(root / 'coco' / 'val' / name)))
    writer.release()
    # the model by its model-index name, as a user would after `mim search`
    summary = infer.main([video, 'mask_rcnn_shvit_s1_toy', '--weights', str(checkpoint),
                          '--out-dir', str(tmp_path / 'out'), '--score-thr', '0'])
    assert summary['images'] == 3
    assert {r['image_id'] for r in json.load(open(summary['predictions']))} == {0, 1, 2}
    drawn = cv2.VideoCapture(str(tmp_path / 'out' / 'clip.mp4'))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


@pytest.mark.slow
def test_segmentation_writes_label_maps(tmp_path):
    from efficientvit_det.mmlab.toy_data import make_ade_toy
    config = os.path.join(ROOT, 'configs', 'toy', 'fpn_shvit_s1_ade20k_toy.py')
    make_ade_toy(str(tmp_path / 'ade'), num_train=2, num_val=2, seed=4)
    model = randomize_(build_model_from_config(config), seed=2)
    checkpoint = tmp_path / 'fpn.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    images = tmp_path / 'ade' / 'images' / 'validation'
    from efficientvit_det.mmlab.inference import build_inferencer
    from mmseg.datasets import ADE20KDataset
    drawn_with = build_inferencer(config, str(checkpoint)).visualizer.dataset_meta['classes']
    assert tuple(drawn_with) == ADE20KDataset.METAINFO['classes']  # the config's, not Cityscapes'
    summary = infer.main([str(images), config, '--weights', str(checkpoint), '--out-dir',
                          str(tmp_path / 'out')])
    assert summary['images'] == 2 and 'predictions' not in summary
    for name in sorted(os.listdir(images)):
        labels = mmcv.imread(str(tmp_path / 'out' / 'pred' / name.replace('.jpg', '.png')),
                             flag='unchanged')
        assert labels.shape == mmcv.imread(str(images / name)).shape[:2]
        assert labels.max() < model.decode_head.num_classes


@pytest.mark.parametrize('value, message', [('2', '2.0 is outside [0, 1]'),
                                            ('-0.1', '-0.1 is outside [0, 1]'),
                                            ('high', "'high' is not a number")])
def test_a_score_threshold_outside_0_to_1_is_refused(value, message, capsys):
    """A threshold of 2 would draw nothing and exit 0."""
    with pytest.raises(SystemExit) as refused:
        infer.build_parser().parse_args(['image.jpg', TOY_CONFIG, '--score-thr', value])
    assert refused.value.code == 2 and message in capsys.readouterr().err
    assert infer.build_parser().parse_args(['i.jpg', TOY_CONFIG, '--score-thr', '1']).score_thr == 1


def test_outputs_never_replace_inputs_or_each_other(toy, tmp_path):
    """A folder holding a.jpg and a.png gets two drawings (a_jpg.jpg, a_png.jpg); an
    --out-dir whose vis/ is the input folder, or the folder of an input video, is
    refused in one line before anything is written, the inputs byte-identical."""
    root, checkpoint = toy
    val = sorted((root / 'coco' / 'val').iterdir())
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'a.jpg').write_bytes(val[0].read_bytes())
    cv2.imwrite(str(images / 'a.png'), cv2.imread(str(val[1])))
    summary = infer.main([str(images), TOY_CONFIG, '--weights', str(checkpoint), '--out-dir',
                          str(tmp_path / 'out'), '--score-thr', '0'])
    assert summary['images'] == 2
    assert sorted(os.listdir(tmp_path / 'out' / 'vis')) == ['a_jpg.jpg', 'a_png.jpg']
    video = tmp_path / 'vid' / 'clip.mp4'
    video.parent.mkdir()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (256, 192))
    writer.write(cv2.imread(str(val[0])))
    writer.release()
    drawn = tmp_path / 'out' / 'vis'
    before = {p: p.read_bytes() for p in (*drawn.iterdir(), video)}
    for source, out_dir, replaced in ((drawn, tmp_path / 'out', drawn / 'a_jpg.jpg'),
                                      (video, video.parent, video)):
        with pytest.raises(SystemExit) as refused:
            run(lambda: infer.main([str(source), TOY_CONFIG, '--weights', str(checkpoint),
                                    '--out-dir', str(out_dir)]))
        assert refused.value.code == (f'error: {replaced} would replace the input {replaced}: '
                                      'pass another --out-dir')
        assert {p: p.read_bytes() for p in before} == before
    assert sorted(os.listdir(tmp_path / 'out')) == ['predictions.json', 'vis']


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal where CUDA is absent')
def test_cuda_without_cuda_is_refused_in_one_line(capsys, tmp_path):
    image = tmp_path / 'a.jpg'
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(SystemExit) as refused:
        infer.main([str(image), TOY_CONFIG, '--weights', 'x.pth', '--device', 'cuda'])
    assert refused.value.code == 2
    assert '--device cuda: CUDA is not available here' in capsys.readouterr().err


def test_device_video_and_annotation_mistakes_are_named_before_the_model_is_built(
        capsys, tmp_path, monkeypatch):
    """A device torch does not know or this tool does not run on, a video OpenCV
    cannot read and a missing --ann-file: one line each, before any model is built."""
    from efficientvit_det.cli.common import run
    from efficientvit_det.mmlab import inference
    monkeypatch.setattr(inference, 'build_inferencer',
                        lambda *a, **k: pytest.fail('built a model for a refused run'))
    image = tmp_path / 'a.jpg'
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    for device, message in (('gpu', 'not a device; cpu, cuda or cuda:N'),
                            ('meta', 'this tool runs on cpu, cuda or cuda:N')):
        with pytest.raises(SystemExit) as refused:
            infer.main([str(image), TOY_CONFIG, '--device', device])
        assert refused.value.code == 2 and message in capsys.readouterr().err
    broken = tmp_path / 'clip.mp4'
    broken.write_bytes(b'\x00\x00\x00\x18ftypmp42 cut short')
    with pytest.raises(SystemExit) as refused:
        run(lambda: infer.main([str(broken), TOY_CONFIG]))
    assert refused.value.code.startswith(f'error: {broken}: not a video OpenCV can read')
    with pytest.raises(SystemExit) as refused:
        infer.main([str(image), TOY_CONFIG, '--ann-file', str(tmp_path / 'absent.json')])
    assert refused.value.code == 2 and 'absent.json: no such file' in capsys.readouterr().err
