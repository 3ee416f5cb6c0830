"""Reading checkpoint files without running code from them.

``torch.load`` with ``weights_only=True`` plus an allow-list of exactly what an
mmengine runner checkpoint pickles besides tensors; objects of other classes are
read as inert placeholders, and a pickle that would call anything is refused.
"""
import os
import pickle
import re
from typing import List

import torch

from ..errors import MissingCheckpointError, UnreadableCheckpointError, UnsafeCheckpointError
from ..log import log_message


def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would let a crafted
    pickle walk to arbitrary callables, so only those methods resolve.
    """
    from mmengine.logging import HistoryBuffer
    methods = {'min', 'max', 'mean', 'current'}  # its statistics methods, by their names
    if owner is HistoryBuffer and name in methods:
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, '__qualname__', type(owner).__qualname__)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr({owner_name}, {name!r}) was refused: only the '
        'statistics methods of mmengine HistoryBuffer may be referenced')


def allowed_checkpoint_globals() -> List[object]:
    """Exactly the globals an mmengine runner checkpoint pickles besides tensors.

    ``message_hub`` holds ``HistoryBuffer`` objects of numpy arrays and scalars
    (and references to the buffer's statistics methods); the model, optimizer,
    schedulers and meta are tensors, numbers, strings and containers, which
    torch's safe unpickler accepts already.
    """
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # numpy 1 and 2 pickles
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    allowed += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    try:
        from mmengine.logging import HistoryBuffer
        allowed += [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')]
    except ImportError:
        pass
    return allowed


def register_allow_list() -> None:
    """Allow the runner-checkpoint globals for every ``weights_only`` load in
    this process (idempotent), so a plain ``torch.load`` works as well."""
    torch.serialization.add_safe_globals(allowed_checkpoint_globals())


class InertObject:
    """Stands in for a pickled object whose class is outside the allow-list.

    Published files often pickle more than tensors (an ``argparse.Namespace``
    under ``args``, training-framework objects in ``meta``). Such an object is
    rebuilt from its state (``__new__`` + ``__setstate__``: data only, no code
    of its class runs) so the tensors around it can be read. A pickle that asks
    to *call* the class or function (a ``REDUCE``: how code-running payloads
    work) reaches ``__init__``, which refuses.
    """

    # torch's unpickler tests placeholders with ``in allowed.values()``: they must
    # never define __eq__, __hash__, __call__ or __getattr__.
    pickled_name = '?'
    refused_calls: List[str] = []

    def __init__(self, *args, **kwargs):
        self.refused_calls.append(self.pickled_name)
        raise pickle.UnpicklingError(f'refused to call {self.pickled_name}(...)')

    def __setstate__(self, state):
        self.pickled_state = state

    def __repr__(self):
        return f'<inert {self.pickled_name}>'


def _printable(name: str) -> str:
    """A pickled name as it may be printed (no control or escape characters)."""
    return ascii(name)[1:-1]


def _inert_classes(names: List[str], refused_calls: List[str]) -> List[tuple]:
    """One :class:`InertObject` subclass per pickled global name, for torch's allow-list."""
    return [(type(name.rsplit('.', 1)[-1], (InertObject,),
                  dict(pickled_name=_printable(name), refused_calls=refused_calls)), name)
            for name in names]


def _refused_culprit(err: Exception) -> str:
    match = re.search(r'GLOBAL ([\w.]+(\([^)]*\))?)', str(err))
    return match.group(1) if match else str(err).strip().splitlines()[0]


#: how the files torch.load reads begin: a zip archive (torch >= 1.6) or a pickle
CHECKPOINT_MAGIC = (b'PK\x03\x04', b'\x80')


def check_checkpoint_file(path: str) -> None:
    """One line naming what is wrong with ``path`` as a checkpoint, before torch
    reads it: missing, a folder, empty, or a file of another format (a JSON or text
    file saved as ``.pth``), which torch would report as an unpickling error."""
    if os.path.isdir(path):
        raise MissingCheckpointError(f'{path} is a folder, not a checkpoint: pass the file '
                                     'inside it (e.g. epoch_12.pth)')
    if not os.path.isfile(path):
        raise MissingCheckpointError(f'Checkpoint not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise UnreadableCheckpointError(f'{path} is empty (0 bytes): a copy or download that '
                                        'did not finish? Fetch or copy it again')
    if path.endswith('.safetensors') or head.startswith(CHECKPOINT_MAGIC):
        return
    shown = head.decode('ascii', 'replace')
    raise UnreadableCheckpointError(
        f'{path} is not a PyTorch checkpoint (it starts with {shown!r}, not a zip archive '
        'or a pickle): pass the .pth file training or a release wrote')


def load_checkpoint_file(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` plus the runner allow-list.

    Objects of other classes are kept as inert placeholders (logged once);
    a pickle that would call anything outside the allow-list raises
    :class:`UnsafeCheckpointError` naming it. Nothing from the file is executed.
    """
    check_checkpoint_file(path)
    if path.endswith('.safetensors'):  # the hub's format: tensors only, nothing to unpickle
        from safetensors.torch import load_file
        return load_file(path, device=str(map_location))
    register_allow_list()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_error = err
    except (RuntimeError, EOFError) as err:  # a zip archive cut short
        raise UnreadableCheckpointError(
            f'{path} is not a complete checkpoint (torch: {str(err).splitlines()[0]}): a copy '
            'or download that stopped half-way? Fetch or copy it again') from None
    try:
        unknown = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError):
        unknown = []  # not a zip checkpoint, or opcodes torch never reads: refuse below
    refused_calls: List[str] = []
    if unknown:
        try:
            with torch.serialization.safe_globals(_inert_classes(unknown, refused_calls)):
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            first_error = err
        else:
            ignored = ', '.join(map(_printable, unknown))
            log_message(f'{path}: ignored pickled objects of {ignored} (not weights; read as '
                        'inert placeholders, none of their code run)')
            return checkpoint
    if refused_calls:
        problem = f'it asks the unpickler to call {refused_calls[0]}(...), which would run code'
    else:
        problem = (f'it pickles {_printable(_refused_culprit(first_error))!r}, which is not a '
                   'tensor or one of the allowed checkpoint classes')
    raise UnsafeCheckpointError(
        f'Refusing to load {path}: {problem}. Nothing was executed. Only load it with '
        'weights_only=False if you trust where it came from.') from None
