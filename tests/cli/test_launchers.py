"""The shell launchers assemble the torchrun / srun command lines users rely on."""
import os
import stat
import subprocess

from tests.support import ROOT


def _recorder(path):
    """An executable that writes its working directory and arguments, one per line."""
    path.write_text('#!/usr/bin/env bash\n{ pwd; printf "%s\\n" "$@"; } > "$RECORD"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run(args, tmp_path, **env):
    """Runs a launcher with ``env`` on top of ours, minus the multi-node settings
    that ``env`` does not give."""
    record = tmp_path / 'record'
    environment = {k: v for k, v in os.environ.items()
                   if k not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')}
    environment.update(RECORD=str(record), **env)
    subprocess.run(['bash'] + args, cwd=tmp_path, env=environment, check=True)
    cwd, *argv = record.read_text().splitlines()
    return cwd, argv


def test_dist_test_passes_multi_node_settings_to_torchrun(tmp_path):
    fake_python = _recorder(tmp_path / 'python')
    cwd, argv = _run([os.path.join(ROOT, 'tools', 'dist_test.sh'), 'c.py', 'w.pth', '4',
                      '--out', 'r.pkl'], tmp_path, PYTHON=fake_python, NNODES='2',
                     NODE_RANK='1', MASTER_ADDR='10.0.0.7', PORT='29999')
    assert cwd == ROOT
    assert argv == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
                    '--master_addr=10.0.0.7', '--master_port=29999', '--nproc_per_node=4',
                    'tools/test.py', 'c.py', 'w.pth', '--launcher', 'pytorch', '--out', 'r.pkl']


def test_dist_train_defaults_to_one_local_node(tmp_path):
    fake_python = _recorder(tmp_path / 'python')
    cwd, argv = _run([os.path.join(ROOT, 'tools', 'dist_train.sh'), 'c.py', '8', '--amp'],
                     tmp_path, PYTHON=fake_python)
    assert cwd == ROOT
    assert argv[:7] == ['-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
                        '--master_addr=127.0.0.1', '--master_port=29500', '--nproc_per_node=8']
    assert argv[7:] == ['tools/train.py', 'c.py', '--launcher', 'pytorch', '--amp']


def test_slurm_train_builds_the_srun_line(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    _recorder(bin_dir / 'srun')
    cwd, argv = _run([os.path.join(ROOT, 'tools', 'slurm_train.sh'), 'gpu', 'job', 'c.py',
                      'work', '--resume'], tmp_path, PATH=f'{bin_dir}:{os.environ["PATH"]}',
                     GPUS='16', SRUN_ARGS='--quotatype=auto --exclusive', PYTHON='python3')
    assert cwd == ROOT
    assert argv == ['-p', 'gpu', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
                    '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
                    '--quotatype=auto', '--exclusive', 'python3', '-u', 'tools/train.py',
                    'c.py', '--work-dir=work', '--launcher', 'slurm', '--resume']
