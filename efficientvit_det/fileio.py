"""Writing files so that nothing half-written is ever left under the real name
(torch only: the latency tool uses it where mmengine is not installed)."""
import contextlib
import glob
import os
import signal
import sys
import tempfile

from .errors import FolderNotOursError, OutputOverwritesInputError

#: in the names of the temporary files below (``<name>.partial-<random>``)
PARTIAL_MARK = '.partial-'


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process's umask (read once,
    at import: reading it means setting it, which would race other threads' writes)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


@contextlib.contextmanager
def atomic_path(path: str):
    """A temporary path beside ``path`` (same file system) to write to; it replaces
    ``path`` only when the block completes, and is removed if the block fails or is
    interrupted (Ctrl-C), so ``path`` keeps its previous content."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # torch's zip writer names the archive after the file: no leading dot
    handle, partial = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + PARTIAL_MARK)
    os.close(handle)
    os.chmod(partial, NEW_FILE_MODE)  # mkstemp's 0600 would hide the file from others
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def remove_partial_files(folder: str) -> list:
    """Delete what a SIGKILL (which no ``finally`` survives) left of writes through
    :func:`atomic_path` in ``folder``; returns the removed paths."""
    found = sorted(glob.glob(os.path.join(glob.escape(folder), f'*{PARTIAL_MARK}*')))
    for path in found:
        os.remove(path)
    return found


def check_writable(path: str) -> None:
    """Raise ``OSError`` naming ``path`` unless a file can be written there; called
    before long work so that its results are not lost at the end."""
    if os.path.isdir(path):
        raise OSError(f'{path} is a folder: name the file to write, e.g. '
                      f'{os.path.join(path, "out")}')
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(f'cannot write {path}: {err.strerror or err}') from None


def check_folder_ours(folder: str, marker: str, writer: str) -> None:
    """Raise :class:`FolderNotOursError` unless ``writer`` may fill ``folder``: it is
    absent or empty, or holds ``marker`` from an earlier run of the same writer.
    Anything else holds someone's files, which are never written over."""
    if os.path.isfile(os.path.join(folder, marker)):
        return
    if os.path.isdir(folder) and os.listdir(folder):
        raise FolderNotOursError(
            f'{folder} holds files that {writer} did not write (it marks its own folders '
            f'with {marker}); nothing was written there: pass another folder, or an empty one')


def claim_folder(folder: str, marker: str, writer: str) -> None:
    """:func:`check_folder_ours`, then mark ``folder`` as ``writer``'s own."""
    check_folder_ours(folder, marker, writer)
    path = os.path.join(folder, marker)
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        with open(path, 'w') as f:
            f.write(f'written by {writer}; safe to replace by it\n')


def check_outputs_apart(inputs, outputs, flag: str = '--out-dir') -> None:
    """Refuse (:class:`OutputOverwritesInputError`, before anything is written) a
    plan in which an output file or folder would replace one of the inputs (an
    ``--out-dir`` pointing at the input folder, a video's drawing named as the
    video, a test set's image folder as the drawings' folder) or another output
    (two inputs drawn under one name). ``flag``: the option the fix is to change."""
    sources = {os.path.realpath(path): path for path in inputs}
    taken = {}
    for output in outputs:
        real = os.path.realpath(output)
        if real in sources:
            raise OutputOverwritesInputError(
                f'{output} would replace the input {sources[real]}: pass another {flag}')
        if real in taken:
            raise OutputOverwritesInputError(f'two outputs would be written to {output}')
        taken[real] = output


#: the signal that stopped this process, once one has (see exit_cleanly_on_sigterm)
_STOPPED_BY = []


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (a scheduler's or ``kill``'s stop) into ``SystemExit``, so the
    ``finally`` blocks above still remove partial files; Python's default would
    end the process without running them. The signal is also recorded
    (:func:`stopped_by_signal`): a library's bare ``except:`` may turn the
    ``SystemExit`` into an error of its own (mmengine's config formatting does)."""
    def stop(signum, frame):
        _STOPPED_BY.append(signum)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def stopped_by_signal():
    """The signal number that stopped this process through the handler above, or None."""
    return _STOPPED_BY[0] if _STOPPED_BY else None
