"""The model index: valid against the files it names, read by mmengine's own
metafile reader, the source of README's table and of tools/infer.py's names."""
import os
import shutil

import pytest

from efficientvit_det.checkpoints import RELEASE_URLS
from efficientvit_det.errors import UnknownModelError
from efficientvit_det.mmlab.inference import resolve_model
from efficientvit_det.mmlab.model_index import (TABLE_BEGIN, TABLE_END, check_index, find_model,
                                                load_index, render_table, repo_root)
from tests.support import ROOT


def test_index_matches_the_files_it_names():
    assert repo_root() == ROOT
    assert check_index() == []
    assert len(load_index()['models']) >= 50


def test_mmengine_reads_our_index():
    from mmengine.infer import BaseInferencer
    models = list(BaseInferencer._get_models_from_metafile(ROOT))
    assert len(models) == len(load_index()['models'])
    published = {m['Name']: m for m in models if 'Weights' in m}
    assert sorted(published) == ['mask_rcnn_efficientvit_m4', 'mask_rcnn_shvit_s4',
                                 'retinanet_efficientvit_m4', 'retinanet_shvit_s4']
    assert published['mask_rcnn_shvit_s4']['Results'][0]['Metrics']['box AP'] == 39.0


def test_readme_table_is_the_generated_one():
    readme = open(os.path.join(ROOT, 'README.md')).read()
    begin, end = readme.index(TABLE_BEGIN), readme.index(TABLE_END) + len(TABLE_END)
    assert readme[begin:end] == render_table(), \
        'README is out of date: python tools/model_index.py --write-readme'


def test_a_drifted_index_is_named(tmp_path):
    for name in ('model-index.yml', 'metafiles', 'configs'):
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), tmp_path / name)
    (tmp_path / 'configs' / 'mask_rcnn_shvit_new.py').write_text(
        "_base_ = './mask_rcnn_shvit_s4.py'\n")
    os.remove(tmp_path / 'configs' / 'fpn_shvit_s1_ade20k.py')
    shutil.copytree(os.path.join(ROOT, 'benchmarks'), tmp_path / 'benchmarks')
    metafile = tmp_path / 'metafiles' / 'shvit.yml'
    text = metafile.read_text().replace(
        RELEASE_URLS['retinanet_shvit_s4_1x_coco'], 'https://example.com/other.pth')
    measured = load_index()['models']
    shvit_s4 = next(m for m in measured if m['Name'] == 'mask_rcnn_shvit_s4')['Metadata']
    whole = shvit_s4['inference time (ms/im)'][0]
    text = text.replace(f"value: {whole['value']}", f"value: {whole['value'] + 1}")
    # another backbone's median, in the same results file, is not this one's
    s3, s4 = (next(m for m in measured if m['Name'] == f'mask_rcnn_shvit_{v}')['Metadata']
              ['Backbone latency (ms/im)'][0] for v in ('s3', 's4'))
    text = text.replace(f"value: {s3['value']}", f"value: {s4['value']}")
    metafile.write_text(text.replace('- Name: mask_rcnn_shvit_s1\n', '- Tag: unnamed\n', 1))
    problems = check_index(str(tmp_path))
    assert any(p.startswith('model entry ') and p.endswith('lacks a Name or a Config')
               for p in problems), problems
    assert (f"mask_rcnn_shvit_s4: inference time (ms/im) {whole['value'] + 1} is no median of "
            f"mask_rcnn_shvit_s4 (PyTorch (eager)) in {tmp_path}/{whole['source']}") in problems
    assert (f"mask_rcnn_shvit_s3: Backbone latency (ms/im) {s4['value']} is no median of "
            f"shvit_s3 (ONNX Runtime) in {tmp_path}/{s3['source']}") in problems
    assert 'configs/mask_rcnn_shvit_new.py: not in the model index' in problems
    assert 'fpn_shvit_s1_ade20k: config configs/fpn_shvit_s1_ade20k.py not found' in problems
    assert 'retinanet_shvit_s4: weights https://example.com/other.pth are no known release' \
        in problems


def test_names_resolve_to_configs_and_released_weights():
    config, weights = resolve_model('mask_rcnn_shvit_s4', None)
    assert config == os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s4.py')
    assert weights == 'release:maskrcnn_shvit_s4_1x_coco'  # the safe loader's way in
    assert find_model('MASKRCNN_SHVIT_S4_1X_COCO')['Name'] == 'mask_rcnn_shvit_s4'  # an alias
    assert resolve_model('retinanet_shvit_s1', 'mine.pth')[1] == 'mine.pth'
    with pytest.raises(UnknownModelError, match='known: .*mask_rcnn_shvit_s4'):
        find_model('mask_rcnn_shvit_s9')


def test_a_readme_without_the_table_markers_is_named():
    from efficientvit_det.errors import ConfigFileError
    from efficientvit_det.mmlab.model_index import replace_table
    with pytest.raises(ConfigFileError, match='put them where the generated table goes'):
        replace_table('# a README without the markers\n', '| table |')
