"""Work dirs: which checkpoint a resumed run continues from, and never replacing an
earlier run's checkpoints unasked."""
import os
import os.path as osp
import re

from ..checkpoints import load_checkpoint_file
from ..errors import NothingToResumeError, RunCompleteError, WorkDirInUseError

#: the names mmengine's CheckpointHook gives checkpoints
CHECKPOINT_NAME = re.compile(r'(epoch|iter)_(\d+)\.pth')


def newest_complete_checkpoint(work_dir: str) -> str:
    """The highest-numbered ``epoch_N.pth`` / ``iter_N.pth`` in ``work_dir``, or the
    file ``last_checkpoint`` names when none is numbered. Checkpoints are only ever
    renamed into place complete, so any that exists is whole; a kill between that
    rename and the update of ``last_checkpoint`` leaves the pointer one behind,
    which is why the numbers decide."""
    numbered = [(m.group(1) == 'iter', int(m.group(2)), osp.join(work_dir, m.group(0)))
                for m in map(CHECKPOINT_NAME.fullmatch, sorted(os.listdir(work_dir))
                             if osp.isdir(work_dir) else []) if m]
    if numbered:
        return max(numbered)[2]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        for path in (named, osp.join(work_dir, osp.basename(named))):
            if named and osp.isfile(path):
                return path
    raise NothingToResumeError(f'--resume: {work_dir} holds no checkpoint to resume from; '
                               'train without --resume, or pass --resume CHECKPOINT')


def check_work_dir_unused(work_dir: str) -> None:
    """A new run must not silently replace an earlier run's checkpoints."""
    if not osp.isdir(work_dir):
        return
    found = sorted(name for name in os.listdir(work_dir)
                   if name.endswith('.pth') or name == 'last_checkpoint')
    if found:
        shown = ', '.join(found[:4]) + (', ...' if len(found) > 4 else '')
        raise WorkDirInUseError(
            f'{work_dir} already holds checkpoints of an earlier run ({shown}). Continue '
            'it with --resume, train into another --work-dir, or pass --overwrite to '
            'replace them.')


def remove_earlier_checkpoints(work_dir: str) -> None:
    """``--overwrite``, once the config and data have passed their checks: an earlier
    run's checkpoints go, so that none of them (an ``epoch_12.pth`` beside this run's
    ``epoch_1.pth``) is later taken for this run's newest."""
    if not osp.isdir(work_dir):
        return
    earlier = sorted(name for name in os.listdir(work_dir)
                     if CHECKPOINT_NAME.fullmatch(name) or name == 'last_checkpoint')
    for name in earlier:
        os.remove(osp.join(work_dir, name))
    if earlier:
        print(f'--overwrite: removed the earlier run\'s {", ".join(earlier)} from {work_dir}',
              flush=True)


def check_run_unfinished(checkpoint: str, train_cfg) -> None:
    """``--resume`` from a checkpoint that already ends the schedule would say
    "resumed", train nothing and exit 0: say the run is complete and how to train
    longer instead. Only local files are read (a release is not a run to resume)."""
    if not osp.isfile(checkpoint):
        return
    try:
        meta = load_checkpoint_file(checkpoint, 'cpu').get('meta') or {}
    except Exception:  # noqa: BLE001 - unreadable: the resume itself says why, in its words
        return
    unit = 'epoch' if 'max_epochs' in train_cfg else 'iter'
    done, total = meta.get(unit), train_cfg.get(f'max_{unit}s')
    if done is not None and total is not None and done >= total:
        raise RunCompleteError(
            f'{checkpoint} ends the schedule ({unit} {done} of {total}): the run is complete. '
            f'To train longer, resume with a longer schedule, e.g. --resume {checkpoint} '
            f'--cfg-options train_cfg.max_{unit}s={2 * total} (and the lr schedule\'s end)')
