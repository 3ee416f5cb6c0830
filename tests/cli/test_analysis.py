"""tools/analysis/: complexity per part, the training data drawn, training curves."""
import json
import os
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch

from efficientvit_det.benchmark.measure import count_flops
from efficientvit_det.cli import browse_dataset, get_flops, plot_logs
from efficientvit_det.mmlab.scope import build_model_from_config
from efficientvit_det.mmlab.toy_data import make_coco_toy
from tests.support import ROOT, TOY_MASK_RCNN as TOY_CONFIG


@pytest.mark.parametrize('config, parts', [
    ('configs/toy/mask_rcnn_shvit_s1_toy.py',
     ['backbone', 'neck', 'rpn_head', 'roi_head.bbox_head', 'roi_head.mask_head']),
    ('configs/retinanet_efficientvit_m4.py', ['backbone', 'neck', 'bbox_head']),
    ('configs/fpn_uniform_xs_ade20k.py', ['backbone', 'neck', 'decode_head']),
])
@pytest.mark.slow
def test_complexity_per_part_adds_up(config, parts, capsys):
    rows = get_flops.main([os.path.join(ROOT, config), '--shape', '128x160'])
    assert [r['part'] for r in rows] == parts + ['total']
    total = rows[-1]
    model = build_model_from_config(os.path.join(ROOT, config))
    assert total['params_m'] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    assert sum(r['params_m'] for r in rows[:-1]) == pytest.approx(total['params_m'])
    assert 0.99 * total['gmacs'] <= sum(r['gmacs'] for r in rows[:-1]) <= total['gmacs'] * 1.001
    backbone_alone = count_flops(model.backbone.eval(), torch.zeros(1, 3, 128, 160)) / 1e9
    assert rows[0]['gmacs'] == pytest.approx(backbone_alone)  # the same count, in place
    assert 'share' in capsys.readouterr().out


def test_get_flops_refuses_a_tiny_shape_and_reads_the_old_form_with_a_note(capsys):
    with pytest.raises(SystemExit):
        get_flops.main([TOY_CONFIG, '--shape', '16'])
    assert 'at least 32' in capsys.readouterr().err
    old = get_flops.main([TOY_CONFIG, '--shape', '64', '96'])  # H W, as this tool once took
    assert 'read as --shape 64x96' in capsys.readouterr().out
    assert old == get_flops.main([TOY_CONFIG, '--shape', '64x96'])


def test_browse_dataset_refuses_to_draw_no_sample(tmp_path, capsys):
    """--count 0 drew nothing and said nothing; it is refused in argparse's one line."""
    with pytest.raises(SystemExit) as refused:
        browse_dataset.main([TOY_CONFIG, '--out-dir', str(tmp_path / 'out'), '--count', '0'])
    assert refused.value.code == 2 and '0 is too small: at least 1' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_browse_dataset_draws_the_ground_truth(tmp_path):
    data = tmp_path / 'coco'
    make_coco_toy(str(data), num_train=3, num_val=1, seed=6)
    written = browse_dataset.main([TOY_CONFIG, '--out-dir', str(tmp_path / 'out'), '--count',
                                   '2', '--cfg-options',
                                   f'train_dataloader.dataset.data_root={data}/'])
    assert len(written) == 2
    images = {i['id']: i['file_name'] for i in
              json.load(open(data / 'annotations' / 'instances_train.json'))['images']}
    for path in written:
        drawn = mmcv.imread(path).astype(int)
        name = os.path.basename(path)[4:]
        original = mmcv.imread(str(data / 'train' / name)).astype(int)
        assert name in images.values() and drawn.shape == original.shape
        # boxes, masks and labels on top of the (possibly flipped) image, in its colours:
        # most pixels unchanged (a channel swap changes nearly all), some drawn over
        difference = min((np.abs(drawn - view).max(axis=2) for view in
                          (original, original[:, ::-1])), key=lambda d: np.median(d))
        assert np.median(difference) < 12 and difference.mean() > 3


def _work_dir(root, name, losses, metric=None):
    logs = root / name / '20260101_000000' / 'vis_data'
    logs.mkdir(parents=True)
    records = [dict(step=10 * (i + 1), loss=loss, lr=1e-3) for i, loss in enumerate(losses)]
    if metric is not None:
        records.append({'step': 1, 'coco/bbox_mAP': metric})
    (logs / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records))
    return str(root / name)


def test_plot_logs_draws_several_runs(tmp_path):
    runs = [_work_dir(tmp_path, 'a', [3.0, 2.0, 1.5], metric=0.2),
            _work_dir(tmp_path, 'b', [3.2, 2.5, 2.4])]
    out = plot_logs.main([*runs, '--out', str(tmp_path / 'curves.png')])
    image = mmcv.imread(out)
    assert image.shape[1] > image.shape[0] * 2  # two panels side by side: loss, mAP
    single = plot_logs.main([runs[1], '--keys', 'loss', '--out', str(tmp_path / 'one.png')])
    assert mmcv.imread(single).shape[1] < image.shape[1]


def test_a_log_cut_by_a_kill_is_read_up_to_its_last_whole_line(tmp_path):
    """A run killed while mmengine wrote a line leaves it cut: the curve is drawn from
    the lines before it; a line that is not JSON elsewhere is named, not a traceback."""
    from efficientvit_det.errors import UnreadableLogError
    from efficientvit_det.mmlab.visualize import read_scalars
    run = _work_dir(tmp_path, 'a', [3.0, 2.0])
    log = tmp_path / 'a' / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.write_text(log.read_text() + '\n{"step": 30, "lo')
    assert [r['loss'] for r in read_scalars(run)] == [3.0, 2.0]
    assert plot_logs.main([run, '--out', str(tmp_path / 'cut.png')])
    log.write_text('not json\n' + log.read_text())
    with pytest.raises(UnreadableLogError, match=r'scalars.json, line 1: not JSON'):
        read_scalars(run)


def test_plot_logs_names_what_is_missing(tmp_path, capsys):
    """The tool as a user runs it finds a run in a parent folder; what is missing is
    one line, exit 2 (checked in-process: each run of the script costs ~11 s)."""
    run = _work_dir(tmp_path, 'a', [3.0])
    result = subprocess.run([sys.executable, 'tools/analysis/plot_logs.py', str(tmp_path),
                             '--out', str(tmp_path / 'x.png')], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr  # a parent folder holding one run: found
    for argv, message in (([run, '--keys', 'mIoU'], "none of the runs logged any of ['mIoU']"),
                          ([str(tmp_path / 'nothing')], 'no vis_data/scalars.json under')):
        with pytest.raises(SystemExit) as exit_info:
            plot_logs.main([*argv, '--out', str(tmp_path / 'y.png')])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'y.png').exists()
