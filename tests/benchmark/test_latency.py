"""The latency tool: schema, modes, ONNX export, the trtexec parser."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from efficientvit_det.benchmark import grid, report
from efficientvit_det.benchmark.report import to_row
from efficientvit_det.cli import benchmark_latency as tool
from efficientvit_det.deploy import onnx_export, targets
from efficientvit_det.deploy.onnx_export import compare_with_onnxruntime, export_onnx
from efficientvit_det.deploy.trtexec import parse_trtexec
from efficientvit_det.models import build_backbone
from tests.support import ROOT, TOY_MASK_RCNN, load_script


@pytest.mark.slow
def test_json_and_csv_schema(tmp_path, capsys):
    out = str(tmp_path / 'lat')
    threads = torch.get_num_threads()
    rows = tool.main(['--backbone', 'uniform_xs', 'shvit_s1', '--shape', '64x96', '--batch',
                      '1', '2', '--mode', 'eager', 'fused', 'channels_last', '--iters', '3',
                      '--warmup', '1', '--threads', '1', '--out', out])
    assert torch.get_num_threads() == threads  # --threads held for the run only
    assert len(rows) == 2 * 2 * 3
    document = json.load(open(out + '.json'))
    assert document['schema'] == report.SCHEMA
    assert 'benchmark_latency' in document['command'] or '--backbone' in document['command']
    assert document['machine']['threads'] == 1 and 'torch' in document['versions']
    for row in document['results']:
        assert set(report.ROW_FIELDS) - {'reason', 'backbone_share'} <= set(row)
        assert row['status'] == 'ok' and row['median_ms'] > 0 and row['gmacs'] > 0
        assert row['p90_ms'] >= row['median_ms'] and row['p99_ms'] >= row['p90_ms']
        assert row['throughput_img_s'] == pytest.approx(row['batch'] * 1e3 / row['median_ms'],
                                                        rel=1e-2)
    assert sum(r['best'] for r in document['results']) == 4  # one per target/shape/batch
    roofs = document['matmul_gflops_by_precision']
    assert set(roofs) == {'fp32'} and roofs['fp32'] == document['matmul_gflops'] > 0
    for row in document['results']:  # each row against the roof of its own precision
        roof = roofs[row['precision']]  # GFLOP/s are written to 0.1, the fraction to 0.001
        assert row['matmul_fraction'] == pytest.approx(row['gflops_per_s'] / roof,
                                                       abs=0.05 / roof + 1e-3)
        assert row['max_rel_err'] < 1e-4  # fused / channels_last compute eager's features
    csv_lines = open(out + '.csv').read().splitlines()
    assert csv_lines[0].startswith('target,kind,mode') and len(csv_lines) == 13
    printed = capsys.readouterr().out
    assert 'best for uniform_xs 64x96 b1' in printed


def test_progress_reporting_is_not_timed():
    """A slow progress bar must not add to the latency of a fast model."""
    import time
    from efficientvit_det.benchmark.measure import measure
    calls = []
    samples = measure(lambda: None, iters=5, warmup=1,
                      after_each=lambda: (calls.append(1), time.sleep(0.02)))
    assert len(calls) == 6 and len(samples) == 5
    assert max(samples) < 5.0  # ms; the 20 ms of each progress step stay outside


def test_gmacs_scale_with_area():
    rows = tool.main(['--backbone', 'shvit_s1', '--shape', '128', '256', '--iters', '1',
                      '--warmup', '0'])
    small, large = (r['gmacs'] for r in rows)
    assert large == pytest.approx(4 * small, rel=0.15)


def test_unknown_mode_and_device_list_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', '--mode', 'turbo'])
    err = capsys.readouterr().err
    assert 'turbo' in err and 'onnxruntime' in err and 'cuda_graph' in err
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', '--device', 'tpu'])
    assert 'valid: cpu, cuda, cuda:N' in capsys.readouterr().err


@pytest.mark.parametrize('argv,message', [
    (['--batch', '0'], '0 is too small: at least 1'),
    (['--iters', '0'], '0 is too small: at least 1'),
    (['--threads', '0'], '0 is too small: at least 1'),
    (['--warmup', '-1'], '-1 is too small: at least 0'),
    (['--shape', '0x0'], 'each side must be at least 32 pixels'),
    (['--shape', '16'], 'each side must be at least 32 pixels'),
])
def test_bad_numbers_are_refused_before_measuring(argv, message, capsys):
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', *argv])
    assert message in capsys.readouterr().err


def _settings(argv):
    parser = tool.build_parser()
    args = parser.parse_args(['--backbone', 'shvit_s1'] + argv)
    modes = tool.check_args(parser, args)
    return args.shape, args.batch, modes, args.threads


def test_paper_protocol_sets_the_papers_throughput_settings(capsys, tmp_path):
    assert _settings([]) == ([(512, 512)], [1], ['eager'], None)  # latency: batch 1
    assert _settings(['--protocol', 'paper']) == ([(224, 224)], [16], ['torchscript'], 1)
    assert _settings(['--protocol', 'paper', '--shape', '256']) == (
        [(256, 256)], [16], ['torchscript'], 1)  # SHViT-S4's ImageNet size
    assert tool.PROTOCOLS['paper']['cuda'] == dict(shape=[(224, 224)], batch=[256],
                                                   mode=['fp16'])
    with pytest.raises(SystemExit):
        _settings(['--protocol', 'paper', '--batch', '1'])
    assert ('--protocol paper sets --batch to [16] on this device; leave --batch out'
            in capsys.readouterr().err)
    threads = torch.get_num_threads()
    try:
        rows = tool.main(['--backbone', 'shvit_s1', '--protocol', 'paper', '--shape', '64',
                          '--iters', '1', '--warmup', '0', '--out', str(tmp_path / 'p')])
    finally:
        torch.set_num_threads(threads)  # the preset's one thread must not leak
    assert [(r['batch'], r['mode'], r['threads'], r['status']) for r in rows] == [
        (16, 'torchscript', 1, 'ok')]
    assert json.load(open(tmp_path / 'p.json'))['protocol'] == 'paper'
    assert "compare img/s with the papers' throughput" in capsys.readouterr().out


def test_unwritable_out_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    blocked = tmp_path / 'readonly'
    blocked.mkdir()
    blocked.chmod(0o500)
    if os.access(blocked, os.W_OK):  # root ignores permissions: use a file as the folder
        blocked = tmp_path / 'a_file'
        blocked.write_text('')
    measured = []
    monkeypatch.setattr(tool, 'run_grid', lambda *a, **k: measured.append(1) or [])
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', '--out', str(blocked / 'results')])
    assert f'--out {blocked / "results"}: cannot write' in capsys.readouterr().err
    assert not measured
    from efficientvit_det.cli import export_onnx as export_tool
    exported = []
    monkeypatch.setattr(export_tool, 'export_checked', lambda *a, **k: exported.append(1))
    with pytest.raises(SystemExit):
        export_tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--out',
                          str(blocked / 'x.onnx')])
    assert f'--out: cannot write {blocked / "x.onnx"}' in capsys.readouterr().err
    assert not exported
    folder = tmp_path / 'exports'  # an existing folder: found before the export, too
    folder.mkdir()
    with pytest.raises(SystemExit):
        export_tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--out', str(folder)])
    assert f'--out: {folder} is a folder: name the file to write' in capsys.readouterr().err
    assert not exported and not os.listdir(folder)


def test_interrupted_results_write_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / 'table'
    (tmp_path / 'table.json').write_text('{"old": true}')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(report.json, 'dump', interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_results([], str(out), 'cpu', 'cmd')
    assert json.load(open(tmp_path / 'table.json')) == {'old': True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['table.json']


def test_unknown_backbone_lists_known():
    with pytest.raises(KeyError, match='shvit_s4'):
        tool.main(['--backbone', 'shvit_s7'])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour without CUDA')
def test_gpu_modes_skip_cleanly_without_cuda():
    rows = tool.main(['--backbone', 'uniform_xs', '--shape', '64', '--mode', 'eager', 'fp16',
                      'cuda_graph', 'tensorrt', '--iters', '2', '--warmup', '0'])
    status = {r['mode']: r for r in rows}
    assert status['eager']['status'] == 'ok'
    for mode in ('fp16', 'cuda_graph', 'tensorrt'):
        assert status[mode]['status'] == 'skipped' and 'CUDA' in status[mode]['reason']


@pytest.mark.gpu
def test_cuda_modes_agree_with_eager(tmp_path):
    """Every CUDA mode that can run here computes eager fp32's features within its
    precision's tolerance (the engine checks before timing), a timm model too."""
    rows = tool.main(['--backbone', 'shvit_s1', 'efficientvit_m0', 'timm:resnet18',
                      '--device', 'cuda', '--shape', '256', '--mode', 'all', '--iters', '5',
                      '--out', str(tmp_path / 'gpu')])
    status = {(r['target'], r['mode']): r for r in rows}
    assert not [r for r in rows if r['status'] == 'mismatch'], rows
    for target in ('shvit_s1', 'efficientvit_m0', 'timm:resnet18'):
        for mode in ('eager', 'channels_last', 'fp16', 'bf16', 'cuda_graph'):
            assert status[target, mode]['status'] == 'ok', status[target, mode]
    document = json.load(open(tmp_path / 'gpu.json'))
    assert document['machine']['gpu'] and {'fp32', 'fp16'} <= set(
        document['matmul_gflops_by_precision'])


def _fill_free_cached_cuda_memory(value: float):
    """Tensors of ``value`` over every block the CUDA allocator holds free (what the
    next row's tensors would take), large blocks first, then the small pool's."""
    filler = []
    for numel in (2 ** 20, 2 ** 18 + 128, 2 ** 15, 128):  # 1 MiB: the pools' border
        while True:
            reserved = torch.cuda.memory_reserved()
            filler.append(torch.full((numel,), value, device='cuda'))
            if torch.cuda.memory_reserved() > reserved:
                break
    return filler


@pytest.mark.gpu
def test_a_cuda_graph_replays_its_model_after_other_tensors_reuse_free_memory(tmp_path):
    """The graph reads its weights, attention-bias indices and input where they were
    at capture: once the run was prepared, other tensors must not take that memory
    (they did: a later row's replay read 1e4s as indices, a device-side assert)."""
    import gc
    from efficientvit_det.deploy.outputs import flatten_outputs
    from efficientvit_det.benchmark.modes import Context, cuda_graph
    model = targets.build_target(backbone='efficientvit_m0').model
    model = model.cuda()
    example = torch.randn(1, 3, 256, 256, device='cuda')
    with torch.no_grad():
        expected = flatten_outputs(model(example))
        run = cuda_graph(model, example, Context('cuda', 1, str(tmp_path)))
        gc.collect()
        filler = _fill_free_cached_cuda_memory(1e4)  # held through the replay
        outputs = flatten_outputs(run())
        torch.cuda.synchronize()
    for output, reference in zip(outputs, expected):
        error = (output.float() - reference).abs().max() / reference.abs().max()
        assert error < 5e-2


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the behaviour without CUDA')
def test_cuda_device_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', '--device', 'cuda'])
    assert 'CUDA is not available on this machine' in capsys.readouterr().err


def test_onnxruntime_on_cuda_never_falls_back_to_cpu_silently():
    ort = pytest.importorskip('onnxruntime')
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('this onnxruntime has the CUDA provider')
    from efficientvit_det.benchmark.modes import Context, ModeUnavailable, onnxruntime_mode
    with pytest.raises(ModeUnavailable, match='onnxruntime-gpu'):
        onnxruntime_mode(build_backbone('shvit_s1'), torch.randn(1, 3, 64, 64),
                         Context('cuda', 1, '/tmp'))


def test_a_mode_computing_other_features_is_a_mismatch_never_best(monkeypatch, tmp_path):
    """A fast mode is only a result if it computes the same features."""
    from efficientvit_det.benchmark import modes

    def off_by_ten_percent(target, example, context):
        return lambda: [1.1 * t for t in target.model(example)]
    monkeypatch.setitem(modes.MODES, 'fused', off_by_ten_percent)
    rows = tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--mode', 'eager', 'fused',
                      '--iters', '2', '--warmup', '0', '--out', str(tmp_path / 'r')])
    by_mode = {r['mode']: r for r in rows}
    assert by_mode['fused']['status'] == 'mismatch'
    assert by_mode['fused']['max_rel_err'] == pytest.approx(0.1, rel=1e-3)
    assert 'differ from eager fp32' in by_mode['fused']['reason']
    assert by_mode['eager']['best'] and not by_mode['fused']['best']
    latency_table = load_script('benchmarks/latency_table.py')
    text = latency_table.table(json.load(open(tmp_path / 'r.json')))
    row = next(line for line in text.splitlines() if line.startswith('| shvit_s1'))
    assert row.split(' | ')[4] == '—' and '| eager |' in row  # fused left out, eager best
    assert 'mismatches (left out above): shvit_s1 fused (0.1)' in text

    def overflowing(target, example, context):
        return lambda: [t * float('inf') for t in target.model(example)]
    monkeypatch.setitem(modes.MODES, 'fused', overflowing)
    rows = tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--mode', 'eager', 'fused',
                      '--iters', '1', '--warmup', '0', '--out', str(tmp_path / 'inf')])
    assert rows[1]['status'] == 'mismatch' and rows[1]['max_rel_err'] is None
    assert 'inf/NaN' in rows[1]['reason']
    document = json.loads(open(tmp_path / 'inf.json').read(), parse_constant=pytest.fail)
    assert 'shvit_s1 fused (inf/NaN)' in latency_table.table(document)


def test_latency_table_prints_one_table_per_run_and_says_its_usage():
    """A GPU table made in parts (committed results): each run its own caption and
    table, in the order given; no file given is a usage line, not a traceback."""
    tool = os.path.join(ROOT, 'benchmarks', 'latency_table.py')
    runs = [os.path.join(ROOT, 'benchmarks', 'results', f'latency_h100_{name}.json')
            for name in ('b64_part2', 'paper')]
    printed = subprocess.run([sys.executable, tool, *runs], capture_output=True, text=True,
                             check=True).stdout
    assert printed.count('| backbone |') == 2 and printed.count('NVIDIA H100') == 2
    assert printed.index('| efficientvit_m0 | 64x512x512 |') < \
        printed.index('| efficientvit_m0 | 256x224x224 |')
    empty = subprocess.run([sys.executable, tool], capture_output=True, text=True)
    assert empty.returncode == 1 and empty.stderr.startswith('usage:')


def test_mode_check_tolerances_are_the_documented_ones():
    assert targets.TOLERANCE == {'fp32': 5e-3, 'fp16': 5e-2, 'bf16': 1e-1}  # README, Latency


def test_median_interval_covers_the_true_median_95_percent_of_the_time():
    from efficientvit_det.benchmark.measure import median_interval
    assert median_interval(list(range(20))) == (5, 14)  # the 6th and 15th of 20
    assert median_interval([1.0, 2.0, 3.0]) == (1.0, 3.0)  # too few for 95%: the range
    rng = np.random.default_rng(0)
    true_median = np.log(2)  # of Exponential(1): skewed, like latencies
    covered = 0
    for _ in range(2000):
        low, high = median_interval(sorted(rng.exponential(size=20).tolist()))
        covered += low <= true_median <= high
    assert 0.94 <= covered / 2000 <= 0.99


def test_a_row_with_a_wide_interval_is_marked_unstable(capsys):
    from efficientvit_det.benchmark.measure import summarize
    steady = summarize([10.0 + 0.01 * i for i in range(20)])
    assert not steady['unstable'] and steady['ci95_low_ms'] <= 10.1 <= steady['ci95_high_ms']
    noisy = summarize([10.0, 11.0, 12.0, 13.0, 14.0] * 4)  # interval 11-13 ms around 12
    assert noisy['unstable'] and (noisy['ci95_low_ms'], noisy['ci95_high_ms']) == (11.0, 13.0)
    row = dict(target='shvit_s1', kind='backbone', mode='eager', precision='fp32',
               device='cpu', batch=1, height=64, width=64, threads=1, status='ok',
               throughput_img_s=83.3, peak_mem_mb=1.0, **noisy)
    assert 'UNSTABLE: 95% interval of the median 11.00-13.00 ms' in report.format_row(row)
    cell = load_script('benchmarks/latency_table.py').cell
    assert cell(row) == '12.0 [11.0–13.0]!' and cell(dict(row, **steady)).endswith(']')


def test_relative_error_catches_shape_count_and_non_finite_outputs():
    from efficientvit_det.deploy.outputs import max_relative_error
    reference = [torch.ones(2, 3), torch.full((4,), -2.0)]
    assert max_relative_error(reference, [torch.ones(2, 3), torch.full((4,), -1.9)]) == \
        pytest.approx(0.05)
    overflowed = torch.ones(2, 3).half()
    overflowed[0, 0] = float('inf')
    assert max_relative_error(reference, [overflowed, torch.full((4,), -2.0)]) == float('inf')
    with_nan = torch.full((4,), float('nan'))
    assert max_relative_error(reference, [torch.ones(2, 3), with_nan]) == float('inf')
    assert max_relative_error(reference, [torch.ones(3, 2), reference[1]]) == float('inf')
    assert max_relative_error(reference, reference[:1]) == float('inf')


@pytest.mark.slow
@pytest.mark.parametrize('target', ['shvit_s1', 'timm:resnet18'])
def test_preparing_a_mode_leaves_the_model_untouched(target, tmp_path, monkeypatch):
    """Modes work on copies: the next mode in a run must see the original model.
    torch.compile itself is stood in for by the module it is given (compiling costs
    ~40 s here and changes no weights: what the compile mode does to the model
    before it is what is checked)."""
    from efficientvit_det.benchmark import modes
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda module: compiled.append(module) or module)
    built = targets.build_target(backbone=target)
    model = built.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structure = [type(m).__name__ for m in model.modules()]
    example = torch.randn(1, 3, 64, 64)
    for mode in modes.CPU_MODES:
        try:
            modes.MODES[mode](built, example, modes.Context('cpu', 1, str(tmp_path)))
        except modes.ModeUnavailable:
            continue
        after = model.state_dict()
        assert [type(m).__name__ for m in model.modules()] == structure, mode
        for key, value in before.items():
            assert after[key].dtype == value.dtype and after[key].is_contiguous(), (mode, key)
            assert torch.equal(after[key], value), (mode, key)
    assert compiled and compiled[0] is not model  # the compile mode got a copy


@pytest.mark.slow
@pytest.mark.parametrize('name', ['shvit_s1', 'efficientvit_m0', 'uniform_xs'])
def test_onnx_export_matches_pytorch(name, tmp_path):
    pytest.importorskip('onnxruntime')
    model = build_backbone(name).eval().fuse()
    example = torch.randn(1, 3, 160, 224)
    path = str(tmp_path / f'{name}.onnx')
    export_onnx(model, example, path)
    reports = compare_with_onnxruntime(model, path, [example])
    assert len(reports) == 3 and all(r['ok'] for r in reports), reports


@pytest.mark.slow
def test_export_tool_validates_dynamic_shapes(tmp_path):
    pytest.importorskip('onnxruntime')
    from efficientvit_det.cli import export_onnx as export_tool
    assert export_tool.main(['--backbone', 'shvit_s1', '--shape', '128', '--dynamic',
                             '--out', str(tmp_path / 'dyn.onnx')]) == 0


TRTEXEC_LOG = """&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --onnx=shvit_s4.onnx --fp16 --useCudaGraph
[11/21/2026-10:00:00] [I] === Device Information ===
[11/21/2026-10:00:00] [I] Selected Device: Orin
[11/21/2026-10:00:00] [I] TensorRT version: 10.3.0
[11/21/2026-10:00:09] [I] === Performance summary ===
[11/21/2026-10:00:09] [I] Throughput: 412.5 qps
[11/21/2026-10:00:09] [I] Latency: min = 2.3 ms, max = 3.1 ms, mean = 2.45 ms, median = 2.43 ms, percentile(90%) = 2.6 ms, percentile(95%) = 2.7 ms, percentile(99%) = 2.9 ms
[11/21/2026-10:00:09] [I] Enqueue Time: min = 0.01 ms, max = 0.05 ms, mean = 0.02 ms, median = 0.02 ms, percentile(90%) = 0.03 ms, percentile(95%) = 0.03 ms, percentile(99%) = 0.04 ms
[11/21/2026-10:00:09] [I] GPU Compute Time: min = 2.2 ms, max = 3.0 ms, mean = 2.41 ms, median = 2.4 ms, percentile(90%) = 2.55 ms, percentile(95%) = 2.65 ms, percentile(99%) = 2.85 ms
[11/21/2026-10:00:09] [I] Total Host Walltime: 3.00082 s
"""
OLD_FORMAT = """[07/28/2022-16:00:55] [I] === Performance summary ===
[07/28/2022-16:00:55] [I] Throughput: 716.632 qps
[07/28/2022-16:00:55] [I] Latency: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, median = 1.38037 ms, percentile(99%) = 1.55853 ms
[07/28/2022-16:00:55] [I] GPU Compute Time: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, median = 1.38037 ms, percentile(99%) = 1.55853 ms
"""


def test_trtexec_parser():
    summary = parse_trtexec(TRTEXEC_LOG)
    assert summary['throughput_qps'] == 412.5 and summary['tensorrt'] == '10.3.0'
    assert summary['gpu_compute'] == dict(min_ms=2.2, max_ms=3.0, mean_ms=2.41, median_ms=2.4,
                                          p90_ms=2.55, p95_ms=2.65, p99_ms=2.85)
    row = to_row(summary, 'shvit_s4', 1, 512, 512)
    assert row['median_ms'] == 2.4 and row['end_to_end_median_ms'] == 2.43
    assert row['device'] == 'Orin' and row['throughput_img_s'] == 412.5
    assert row['trtexec_command'].startswith('trtexec --onnx=shvit_s4.onnx')
    assert set(report.ROW_FIELDS) <= set(row)
    old = parse_trtexec(OLD_FORMAT)
    assert old['gpu_compute']['median_ms'] == 1.38037 and 'p90_ms' not in old['gpu_compute']
    with pytest.raises(ValueError, match='Performance summary'):
        parse_trtexec('[I] Building engine...\n')


@pytest.mark.slow
@pytest.mark.parametrize('log', [TRTEXEC_LOG, OLD_FORMAT], ids=['trt10', 'trt8'])
def test_jetson_parser_tool_prints_the_table_and_writes_the_schema(log, tmp_path):
    """What trtexec does not report (memory; p90 in older versions) shows as a dash."""
    (tmp_path / 'run.log').write_text(log)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'jetson', 'parse_trtexec.py'),
         str(tmp_path / 'run.log'), '--target', 'shvit_s4', '--out', str(tmp_path / 'j')],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    row_line = next(line for line in result.stdout.splitlines() if line.startswith('shvit_s4'))
    assert 'tensorrt' in row_line and row_line.rstrip().endswith('—')
    assert 'nvpmodel -m 0' in result.stdout
    document = json.load(open(tmp_path / 'j.json'))
    assert document['schema'] == report.SCHEMA and document['results'][0]['peak_mem_mb'] is None


# written out here, not read from the module: changing a flag must change this test
EXPECTED_TRTEXEC_FLAGS = ['--fp16', '--useCudaGraph', '--useSpinWait', '--separateProfileRun',
                          '--noDataTransfers', '--warmUp=500', '--duration=10',
                          '--iterations=200']


def _onnx_with_input(path, name, dims):
    """A one-node ONNX file whose input ``name`` has ``dims`` (names: dynamic axes)."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', [name], ['output'])], 'g',
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info('output', TensorProto.FLOAT, dims)])
    onnx.save(helper.make_model(graph), str(path))


@pytest.mark.slow
def test_jetson_recipe_runs_trtexec_with_the_pinned_flags(tmp_path):
    """tools/jetson/build_and_profile.sh as a user runs it, against a stand-in trtexec
    that records its arguments and prints a TensorRT 10 log: a dynamic export gets
    --shapes, a fixed-size one must not (trtexec refuses them), and a shape that
    is not the file's (a dynamic whole detector's batch is 1) is one clear line."""
    pytest.importorskip('onnx')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (tmp_path / 'trtexec.log').write_text(TRTEXEC_LOG)
    fake = bin_dir / 'trtexec'
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n'
                    f'cat {tmp_path}/trtexec.log\n')
    fake.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ['PATH']])
    _onnx_with_input(tmp_path / 'dynamic.onnx', 'images', ['batch', 3, 'height', 'width'])
    _onnx_with_input(tmp_path / 'fixed.onnx', 'input', [1, 3, 384, 640])
    _onnx_with_input(tmp_path / 'whole.onnx', 'input', [1, 3, 'height', 'width'])

    def recipe(onnx_file, shape, batch):
        (tmp_path / 'argv').unlink(missing_ok=True)
        return subprocess.run(
            ['bash', 'tools/jetson/build_and_profile.sh', str(tmp_path / onnx_file),
             'shvit_s4', shape, batch], cwd=ROOT, capture_output=True, text=True,
            env=dict(os.environ, PATH=path, OUT=str(tmp_path / 'result')))

    result = recipe('dynamic.onnx', '384x640', '2')
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'argv').read_text().splitlines() == [
        f'--onnx={tmp_path}/dynamic.onnx',
        f'--saveEngine={tmp_path}/dynamic_b2_384x640_fp16.engine',
        '--shapes=images:2x3x384x640'] + EXPECTED_TRTEXEC_FLAGS  # the file's input name
    assert 'sudo nvpmodel -m 0' in result.stdout
    assert json.load(open(tmp_path / 'result.json'))['results'][0]['median_ms'] == 2.4
    assert recipe('fixed.onnx', '384x640', '1').returncode == 0
    assert (tmp_path / 'argv').read_text().splitlines() == [
        f'--onnx={tmp_path}/fixed.onnx', f'--saveEngine={tmp_path}/fixed_b1_384x640_fp16.engine'
    ] + EXPECTED_TRTEXEC_FLAGS
    result = recipe('fixed.onnx', '512x512', '1')
    assert result.returncode != 0, result.stderr
    assert 'at the fixed input 1x3x384x640, not 1x3x512x512' in result.stderr
    assert not (tmp_path / 'argv').exists()  # trtexec never started
    # the script's other refusals come from the same function (each run costs ~12 s)
    from efficientvit_det.deploy.trtexec import build_command
    for onnx_file, batch, message in (
            ('fixed.onnx', 2, 'at the fixed input 1x3x384x640, not 2x3x384x640'),
            ('whole.onnx', 2, 'takes inputs 1x3xheightxwidth (named axes free), not 2x3x384x640'),
            ('missing.onnx', 1, 'no such ONNX file')):
        with pytest.raises(ValueError, match=re.escape(message)):
            build_command(str(tmp_path / onnx_file), 'engine', batch, 384, 640)
    assert build_command(str(tmp_path / 'whole.onnx'), 'engine', 1, 384, 640)[3] == \
        '--shapes=input:1x3x384x640'


@pytest.mark.slow
def test_backbone_mode_needs_torch_only(tmp_path):
    code = (
        'import sys, runpy\n'
        'for name in ("mmdet", "mmseg", "mmcv", "mmengine"):\n'
        '    sys.modules[name] = None\n'
        f'sys.argv = ["benchmark_latency.py", "--backbone", "uniform_xs", "--shape", "64",'
        f' "--iters", "2", "--warmup", "0", "--out", "{tmp_path}/r"]\n'
        f'runpy.run_path("{ROOT}/tools/benchmark_latency.py", run_name="__main__")\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.load(open(tmp_path / 'r.json'))['results'][0]['status'] == 'ok'


def test_plot_speed_accuracy_names_an_input_that_is_not_its_kind(tmp_path, capsys):
    """The CSV the latency tool writes beside its JSON, a missing file, an accuracy
    row without a number, results sharing no backbone with the table: one line each
    (argparse's, exit 2), nothing drawn."""
    from efficientvit_det.cli import plot_speed_accuracy as plot
    results = tmp_path / 'cpu.json'
    results.write_text(json.dumps({'results': [dict(target='shvit_s1', mode='eager',
                                                    status='ok', median_ms=5.0)]}))
    (tmp_path / 'cpu.csv').write_text('target,mode\nshvit_s1,eager\n')
    (tmp_path / 'other.json').write_text(json.dumps({'results': [dict(target='shvit_s1')]}))
    (tmp_path / 'accuracy.csv').write_text('target,metric,accuracy\nshvit_s1,top-1,\n')
    (tmp_path / 'other.csv').write_text('target,metric,accuracy\nresnet,top-1,70\n')
    for argv, message in (
            ([str(tmp_path / 'cpu.csv')], 'cpu.csv: not a results JSON'),
            ([str(tmp_path / 'absent.json')], 'absent.json: not a results JSON'),
            ([str(tmp_path / 'other.json')], '1 rows without target, mode, status'),
            ([str(results), '--accuracy', str(tmp_path / 'accuracy.csv'), '--metric', 'top-1'],
             'accuracy.csv: not a CSV with columns target, metric, accuracy'),
            ([str(results), '--accuracy', str(tmp_path / 'other.csv'), '--metric', 'top-1'],
             'no backbone has both a latency')):
        with pytest.raises(SystemExit) as refused:
            plot.main(argv + ['--out', str(tmp_path / 'chart.png')])
        assert refused.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'chart.png').exists()


@pytest.mark.slow
def test_plot_speed_accuracy(tmp_path):
    from efficientvit_det.cli import plot_speed_accuracy as plot
    out = str(tmp_path / 'lat')
    tool.main(['--backbone', 'shvit_s1', 'efficientvit_m0', '--shape', '64', '--iters', '2',
               '--warmup', '0', '--out', out])
    png = str(tmp_path / 'chart.png')
    plot.main([out + '.json', '--out', png])
    assert os.path.getsize(png) > 1000 and os.path.exists(png[:-4] + '.svg')
    # the medians' intervals are drawn as error bars spanning exactly the recorded interval
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = {r['target']: r for r in json.load(open(out + '.json'))['results']}
    accuracy = plot.load_accuracy(os.path.join(ROOT, 'benchmarks', 'accuracy.csv'),
                                  'ImageNet top-1')
    names = sorted(rows)
    spans = sorted(tuple(segment[:, 0].round(4)) for container in
                   plot.draw(plt, rows, accuracy, names, 'top-1', 'best').axes[0].containers
                   for segment in container.lines[2][0].get_segments())
    assert spans == sorted((round(rows[n]['ci95_low_ms'], 4), round(rows[n]['ci95_high_ms'], 4))
                           for n in names), spans
    for row in rows.values():
        row.pop('ci95_low_ms'), row.pop('ci95_high_ms')
    assert not plot.draw(plt, rows, accuracy, names, 'top-1', 'best').axes[0].containers


def test_interrupted_export_leaves_no_partial_file(tmp_path, monkeypatch):
    """Ctrl-C half-way through writing the ONNX file: the earlier export stays,
    the half-written one is removed."""
    from efficientvit_det.cli import export_onnx as export_tool
    out = tmp_path / 'shvit.onnx'
    out.write_text('an earlier export')

    def interrupted(model, example, path, **kwargs):
        with open(path, 'w') as f:
            f.write('half an export')
        raise KeyboardInterrupt
    monkeypatch.setattr(onnx_export, 'export_onnx', interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--out', str(out)])
    assert out.read_text() == 'an earlier export'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['shvit.onnx']


@pytest.mark.slow
def test_sigterm_during_export_leaves_no_partial_file(tmp_path):
    """A real SIGTERM while the ONNX file is half-written (fault injected: the export
    writes half a file, then waits to be killed)."""
    out = tmp_path / 'shvit.onnx'
    out.write_text('an earlier export')
    script = (
        'import sys, time\n'
        'from efficientvit_det.cli import export_onnx as export_tool\n'
        'from efficientvit_det.cli.common import run\n'
        'def stalled(model, example, path, **kwargs):\n'
        '    open(path, "w").write("half an export")\n'
        '    print("writing", flush=True)\n'
        '    time.sleep(60)\n'
        'from efficientvit_det.deploy import onnx_export\n'
        'onnx_export.export_onnx = stalled\n'
        f'run(lambda: export_tool.main(["--backbone", "shvit_s1", "--shape", "64", "--out", '
        f'{str(out)!r}]))\n')
    process = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == 'writing', process.stderr.read()[-2000:]
    assert list(tmp_path.glob('shvit.onnx.partial-*'))  # caught half-way
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert out.read_text() == 'an earlier export'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['shvit.onnx']


@pytest.mark.slow
def test_whole_two_stage_detector_is_timed_in_pytorch_and_onnxruntime():
    """Mask R-CNN from image to final detections: eager, a traced mode that lists
    the detections in another order (compared as detections, so still ok) and ONNX
    Runtime; the RoI and mask heads are timed and counted too."""
    pytest.importorskip('onnxruntime')
    config = TOY_MASK_RCNN  # the toy heads: RoIAlign sampling 2x2, 128 wide (cheaper)
    rows = tool.main(['--config', config, '--whole', '--shape', '128', '--mode', 'eager',
                      'torchscript', 'onnxruntime', '--iters', '1', '--warmup', '0'])
    by_mode = {r['mode']: r for r in rows}
    assert all(r['status'] == 'ok' and r['kind'] == 'whole' for r in rows), rows
    backbone_gmacs = tool.main(['--backbone', 'shvit_s1', '--shape', '128', '--iters', '1',
                                '--warmup', '0'])[0]['gmacs']
    assert by_mode['eager']['gmacs'] > 10 * backbone_gmacs  # the RoI heads are timed too
    with pytest.raises(SystemExit):
        tool.main(['--config', config, '--whole', '--batch', '2'])


@pytest.mark.slow
def test_several_configs_are_timed_in_one_interleaved_grid(monkeypatch, capsys):
    """Each config is a target of the same grid (so its rounds interleave with the
    others') and gets --cfg-options; rows are named by file name, so two files of
    one name are refused; one --checkpoint cannot fit several configs, and a batch
    is refused when any of them is a whole detector."""
    configs = [os.path.join(ROOT, 'configs', c) for c in ('retinanet_shvit_s1.py',
                                                          'retinanet_uniform_xs.py')]
    grids = []
    real_grid = grid.run_grid
    monkeypatch.setattr(tool, 'run_grid',
                        lambda targets, *a, **k: grids.append(targets) or
                        real_grid(targets, *a, **k))
    rows = tool.main(['--config', *configs, '--whole', '--shape', '96', '--iters', '1',
                      '--warmup', '0', '--cfg-options', 'model.test_cfg.max_per_img=7'])
    assert [r['target'] for r in rows] == ['retinanet_shvit_s1', 'retinanet_uniform_xs']
    assert len(grids) == 1 and all(r['status'] == 'ok' for r in rows)
    assert [t.model.model.test_cfg.max_per_img for t in grids[0]] == [7, 7]  # every config's
    segmentor = os.path.join(ROOT, 'configs', 'fpn_uniform_xs_ade20k.py')
    for argv, message in ((configs + configs[:1], "['retinanet_shvit_s1'] comes twice"),
                          (configs + ['--checkpoint', 'x.pth'], 'give one --config with it'),
                          ([segmentor, configs[1], '--batch', '2'], 'takes one image')):
        with pytest.raises(SystemExit):
            tool.main(['--whole', '--config'] + argv)
        assert message in capsys.readouterr().err


def test_export_tool_keeps_the_old_file_when_validation_fails(tmp_path, monkeypatch, capsys):
    pytest.importorskip('onnxruntime')
    from efficientvit_det.cli import export_onnx as export_tool
    out = tmp_path / 'shvit_s1.onnx'
    assert export_tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--out', str(out)]) == 0
    good = out.read_bytes()
    monkeypatch.setattr(targets.Target, 'validate_export', lambda *args, **kwargs: [
        dict(shape=[1, 3, 64, 64], output=0, ok=False, error='shape [1] vs torch [2]')])
    assert export_tool.main(['--backbone', 'shvit_s1', '--shape', '64', '--out', str(out)]) == 1
    assert out.read_bytes() == good
    assert (tmp_path / 'shvit_s1.invalid.onnx').exists()
    assert 'left as it was' in capsys.readouterr().out


@pytest.mark.skipif(not os.path.exists('/proc/self/clear_refs'), reason='Linux only')
def test_cpu_peak_memory_is_per_row():
    """An earlier row's peak does not leak into the next row's figure."""
    big = torch.ones(300 * 2 ** 20 // 4)  # 300 MB resident
    grid._reset_peak_memory('cpu')
    with_big = grid._peak_memory_mb('cpu')
    del big
    grid._reset_peak_memory('cpu')
    assert grid._peak_memory_mb('cpu') < with_big - 200


@pytest.mark.slow
def test_conv_throughput_benchmark_accounts_for_the_convolutions(tmp_path):
    """benchmarks/conv_throughput.py: its per-layer MACs add up to the network's
    convolution MACs (torch's FLOP counter), split into 1x1 and the rest."""
    conv_throughput = load_script('benchmarks/conv_throughput.py')
    from efficientvit_det.benchmark.measure import count_flops
    pointwise, other, roof = conv_throughput.main(
        ['--backbone', 'shvit_s1', '--shape', '128', '--iters', '1', '--threads', '1',
         '--out', str(tmp_path / 'c.json')])
    total = count_flops(build_backbone('shvit_s1').eval().fuse(), torch.randn(1, 3, 128, 128))
    conv_gmacs = pointwise['gmacs'] + other['gmacs']
    assert 0.8 * total / 1e9 < conv_gmacs <= total / 1e9 * 1.001  # attention matmuls are the rest
    assert pointwise['layers'] > other['layers'] > 0 and roof > 0
    assert len(json.load(open(tmp_path / 'c.json'))['layers']) == \
        pointwise['layers'] + other['layers']


@pytest.mark.slow
def test_checks_run_on_given_weights_or_on_non_trivial_ones(tmp_path, capsys):
    """Without --checkpoint the timed and checked model has random non-trivial weights
    (no zero-weight branch BatchNorm left); with one, exactly its weights; a
    checkpoint of another variant is refused naming keys."""
    from efficientvit_det.checkpoints import CheckpointMismatchError
    from efficientvit_det.models.checking import randomize_for_checking_
    default = targets.build_target(backbone='shvit_s1').model
    last_bns = [m.bn.weight for m in default.modules() if hasattr(m, 'bn')]
    assert all(w.abs().min() >= 0.5 for w in last_bns)
    trained = randomize_for_checking_(build_backbone('shvit_s1'), seed=7)
    path = tmp_path / 's1.pth'
    torch.save({'state_dict': trained.state_dict()}, path)
    loaded = targets.build_target(backbone='shvit_s1', checkpoint=str(path)).model
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(CheckpointMismatchError):
        targets.build_target(backbone='shvit_s2', checkpoint=str(path))
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'shvit_s1', 'shvit_s2', '--checkpoint', str(path)])
    assert '--checkpoint needs one of our backbones' in capsys.readouterr().err
    rows = tool.main(['--backbone', 'shvit_s1', '--checkpoint', str(path), '--shape', '64',
                      '--mode', 'eager', 'fused', '--iters', '1', '--warmup', '0'])
    assert [r['status'] for r in rows] == ['ok', 'ok']
    from efficientvit_det.cli import export_onnx as export_tool
    out = tmp_path / 's1.onnx'
    assert export_tool.main(['--backbone', 'shvit_s1', '--checkpoint', str(path),
                             '--shape', '64', '--out', str(out)]) == 0
    import onnxruntime as ort
    x = torch.randn(1, 3, 64, 64)
    exported = ort.InferenceSession(str(out)).run(None, {'input': x.numpy()})
    with torch.no_grad():  # the exported graph carries the checkpoint's weights
        assert np.allclose(exported[-1], trained.eval()(x)[-1].numpy(), atol=1e-4)


def test_rows_are_timed_in_interleaved_rounds(monkeypatch):
    """Each row is checked and warmed up first; then the rows take turns, round by
    round, so that a slow spell hits every row alike."""
    calls = []

    def recording(label):
        def prepare(target, example, context):
            def run():
                calls.append(label)
                return target.model(example)
            return run
        return prepare
    monkeypatch.setitem(grid.MODES, 'first', recording('first'))
    monkeypatch.setitem(grid.MODES, 'second', recording('second'))
    target = targets.build_target(backbone='shvit_s1')
    rows = grid.run_grid([target], [(64, 64)], [1], ['first', 'second'], 'cpu', 1,
                         iters=5, warmup=1, rounds=2)
    # check + warm-up; then per round an untimed call and the row's share (3, then 2)
    assert calls == (['first'] * 2 + ['second'] * 2 + ['first'] * 4 + ['second'] * 4
                     + ['first'] * 3 + ['second'] * 3)
    assert [r['runs'] for r in rows] == [5, 5]


def test_best_mode_trusts_an_unstable_row_only_when_it_is_faster_for_sure():
    def row(mode, median, high=None):
        return dict(target='m', height=64, width=64, batch=1, status='ok', mode=mode,
                    median_ms=median, unstable=high is not None, ci95_high_ms=high)
    # unstable, its interval reaching above the stable 9 ms: not trusted
    rows = [row('eager', 10.0), row('fused', 8.0, high=9.5), row('onnxruntime', 9.0)]
    assert grid.mark_best(rows)['m 64x64 b1']['mode'] == 'onnxruntime'
    # unstable, but even its slow end beats every stable median
    rows = [row('eager', 10.0), row('onnxruntime', 7.0, high=8.5)]
    assert grid.mark_best(rows)['m 64x64 b1']['mode'] == 'onnxruntime'
    rows = [row('eager', 10.0, high=12.0), row('fused', 8.0, high=11.0)]
    assert grid.mark_best(rows)['m 64x64 b1']['mode'] == 'fused'


def test_rank_consistency_flags_a_pair_that_swaps_between_runs(tmp_path, monkeypatch):
    """Pairs whose intervals are apart in both runs must keep their order; one
    that swaps is a contradiction (exit 1); overlapping pairs rank nothing."""
    rank = load_script('benchmarks/rank_consistency.py')

    def run(path, medians):
        rows = [dict(target=name, mode='eager', height=64, width=64, batch=1, status='ok',
                     median_ms=m, ci95_low_ms=m - 1, ci95_high_ms=m + 1)
                for name, m in medians.items()]
        path.write_text(json.dumps(dict(results=rows)))
        return str(path)
    first = run(tmp_path / 'a.json', dict(a=10.0, b=20.0, c=30.0))
    same = run(tmp_path / 'b.json', dict(a=11.0, b=21.0, c=30.5))
    assert rank.main([first, same]) == 0
    swapped = run(tmp_path / 'c.json', dict(a=25.0, b=20.0, c=30.5))
    assert rank.main([first, swapped, '--out', str(tmp_path / 'r.json')]) == 1
    report = json.load(open(tmp_path / 'r.json'))
    assert report['separated_in_both'] == 3 and report['agreeing'] == 2
    assert [c['a'][0] for c in report['contradictions']] == ['a']

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(rank.json, 'dump', interrupted)
    with pytest.raises(KeyboardInterrupt):  # --out keeps its previous report
        rank.main([first, same, '--out', str(tmp_path / 'r.json')])
    assert json.load(open(tmp_path / 'r.json')) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.json', 'b.json', 'c.json', 'r.json']


def test_onnxruntime_threads_do_not_spin_into_the_next_row(monkeypatch):
    """Interleaved rows: ONNX Runtime's threads must not keep spinning on the cores
    after a run (measured: the next row ran 2x slower), so the session says so."""
    ort = pytest.importorskip('onnxruntime')
    seen = []
    real_session = ort.InferenceSession

    def recording(path, options=None, **kwargs):
        seen.append(options.get_session_config_entry('session.intra_op.allow_spinning'))
        return real_session(path, options, **kwargs)
    monkeypatch.setattr(ort, 'InferenceSession', recording)
    target = targets.build_target(backbone='shvit_s1')
    from efficientvit_det.benchmark.modes import MODES, Context, work_dir
    MODES['onnxruntime'](target, torch.randn(1, 3, 64, 64), Context('cpu', 1, work_dir()))
    assert seen == ['0']


def test_whole_detector_benchmark_runs_every_detector_together_and_checks_the_rerun(
        tmp_path, monkeypatch, capsys):
    """benchmarks/whole_detectors_cpu.py, its engine stood in for: one engine run per
    shape over all nine configs (the deployment config among them), the table's
    ratio against the ResNet-50 row, and --rerun's ranking check, which exits 1
    when the second run flips a pair the first run separated."""
    bench = load_script('benchmarks/whole_detectors_cpu.py')
    calls = []
    flip = {'on': False}

    def fake_engine(argv):
        configs = argv[argv.index('--config') + 1:argv.index('--whole')]
        out = argv[argv.index('--out') + 1]
        calls.append((len(configs), os.path.basename(out)))
        rows = []
        for index, config in enumerate(configs):
            name = os.path.splitext(os.path.basename(config))[0]
            ms = 2000.0 if name.endswith('_r50') else 1000.0 + 10 * index
            if flip['on'] and name == 'mask_rcnn_shvit_s4':
                ms = 3000.0  # slower than mmdet's ResNet-50 this time
            for mode, factor in (('eager', 1.0), ('onnxruntime', 0.5)):
                row = dict(target=name, kind='whole', mode=mode, precision='fp32',
                           device='cpu', batch=1, height=96, width=96, status='ok',
                           median_ms=ms * factor, ci95_low_ms=ms * factor - 1,
                           ci95_high_ms=ms * factor + 1, gmacs=1.0, unstable=False)
                if mode == 'eager':
                    row.update(stages_ms={'backbone': ms / 4, 'neck': 3 * ms / 4},
                               backbone_share=0.25)
                rows.append(row)
        report.write_results(rows, out, 'cpu', 'fake')
        return rows
    monkeypatch.setattr(bench.engine, 'main', fake_engine)
    assert bench.main(['--shape', '96x96', '--rerun', '--out-dir', str(tmp_path)]) == 0
    assert calls == [(9, 'whole_cpu_96x96'), (9, 'whole_cpu_96x96_rerun')]
    table = (tmp_path / 'whole_cpu.md').read_text()
    assert '| mask_rcnn | SHViT-S4 | 96x96 | 1.0 | 1000 | 500 | 25% | 2.00x |' in table
    assert '| mask_rcnn | SHViT-S4, 300 proposals |' in table
    ranking = json.load(open(tmp_path / 'whole_cpu_96x96_rank_consistency.json'))
    assert ranking['contradictions'] == [] and ranking['separated_in_both'] > 0
    assert ranking['second'].endswith('whole_cpu_96x96_rerun.json')

    real_measure = bench.measure_shape

    def flipped_rerun(shape, iters, threads, out):
        flip['on'] = out.endswith('_rerun')
        return real_measure(shape, iters, threads, out)
    monkeypatch.setattr(bench, 'measure_shape', flipped_rerun)
    assert bench.main(['--shape', '96x96', '--rerun', '--out-dir', str(tmp_path)]) == 1
    assert 'CONTRADICTION' in capsys.readouterr().out


def test_the_dynamic_size_hint_names_window_attention_only_where_a_model_has_it():
    """EfficientViT-M and UniForm take a map that fits in one window whole (a size a
    trace writes into the graph); SHViT has no window, so no hint for it."""
    assert onnx_export.dynamic_size_limit(build_backbone('shvit_s1')) is None
    for name, windows in (('efficientvit_m0', '7'), ('uniform_xs', '7')):
        assert f'windows of {windows})' in onnx_export.dynamic_size_limit(build_backbone(name))
