"""Writing files so that nothing half-written is ever left under the real name
(torch only: the latency tool uses it where mmengine is not installed)."""
import contextlib
import glob
import os
import signal
import sys
import tempfile


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
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(f'cannot write {path}: {err.strerror or err}') from None


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (a scheduler's or ``kill``'s stop) into ``SystemExit``, so the
    ``finally`` blocks above still remove partial files; Python's default would
    end the process without running them."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
