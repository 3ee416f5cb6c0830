"""Work dirs: which checkpoint a resumed run continues from, never replacing an
earlier run's checkpoints unasked, and one training at a time in each."""
import contextlib
import os
import os.path as osp
import re
import socket

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


#: the file by which a running training holds its work dir: "<pid> <host>"
LOCK_NAME = 'training.lock'


@contextlib.contextmanager
def hold_work_dir(work_dir: str):
    """Hold ``work_dir`` while a training runs in it: a second training started
    into it (even before the first has written a checkpoint, which the checks above
    look for) stops in one line. A lock whose process is gone (a killed run) is
    taken over; one from another host is trusted, and its path named. Only the
    launching rank of a distributed run takes it."""
    if int(os.environ.get('RANK', '0')) != 0:
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    mine = f'{os.getpid()} {socket.gethostname()}'
    for _ in range(2):  # the second try after removing a dead process's lock
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _refuse_or_clear(work_dir, path)
            continue
        with os.fdopen(handle, 'w') as f:
            f.write(mine + '\n')
        break
    try:
        yield
    finally:
        if _read_lock(path) == mine:
            os.remove(path)


def _read_lock(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ''


def _refuse_or_clear(work_dir: str, path: str) -> None:
    """Raise naming the training that holds ``work_dir``, or remove its lock when
    that process no longer exists on this host."""
    pid, _, host = _read_lock(path).partition(' ')
    alive = True
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:  # another user's process: it exists
            pass
    if alive:
        raise WorkDirInUseError(
            f'{work_dir} is held by a training still running (process {pid} on '
            f'{host or "an unknown host"}): wait for it, stop it, or train into another '
            f'--work-dir (remove {path} if no training runs there)')
    os.remove(path)
