"""What every entry point shares: one-line errors and exit codes, argument types
(counts, image shapes) and the ``--cfg-options`` argument, one syntax each."""
import argparse
import re
import sys
from typing import Callable, Tuple

from ..errors import EfficientVitDetError
from ..fileio import exit_cleanly_on_sigterm, stopped_by_signal

#: smallest input side a tool takes: the coarsest stride the detection configs pad to
MIN_SIDE = 32


def run(main: Callable[[], object]) -> None:
    """Run an entry point (``tools/*.py`` are nothing else): an error of ours (a
    missing dataset, a checkpoint that does not fit, ...) ends with its message and
    exit code 1, not a traceback;
    SIGTERM (a scheduler's stop) exits through the cleanup, so no partial file is
    left; a finished distributed run leaves its process group."""
    exit_cleanly_on_sigterm()
    try:
        result = main()
    except EfficientVitDetError as err:
        sys.exit(f'error: {message_of(err)}')
    except Exception:
        signum = stopped_by_signal()
        if signum is None:
            raise  # a bug: its traceback
        # SIGTERM's exit, turned into another error by a library's bare except
        print(f'stopped by signal {signum}', file=sys.stderr)
        sys.exit(128 + signum)
    _leave_process_group()
    if isinstance(result, int) and not isinstance(result, bool):
        sys.exit(result)  # an entry point's own exit code (an export that does not match)


def message_of(err: Exception) -> str:
    """The message of an error of ours; raised in a dataloader worker, torch hands it
    back with the worker's traceback in its text, of which its last line is ours."""
    text = str(err)
    if 'Original Traceback' not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    return last.split(': ', 1)[1] if ': ' in last else last


def _leave_process_group() -> None:
    try:
        from ..mmlab.runner import leave_process_group
    except ImportError:  # torch alone: no process group of OpenMMLab's either
        return
    leave_process_group()


def at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum`` (a count of 0 would
    otherwise fail only when a run reaches it, or mean something else)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'{value} is too small: at least {minimum}')
        return value
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1 (a score threshold of 2 would draw
    nothing and say nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'{value} is outside [0, 1]')
    return value


def parse_shape(text: str) -> Tuple[int, int]:
    """``HxW`` (or ``S`` for a square): the one way every tool takes an image shape."""
    match = re.fullmatch(r'(\d+)(?:x(\d+))?', text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f'shape must be HxW or S, got {text!r}')
    height = int(match.group(1))
    width = int(match.group(2) or height)
    if min(height, width) < MIN_SIDE:
        raise argparse.ArgumentTypeError(f'shape {text!r}: each side must be at least '
                                         f'{MIN_SIDE} pixels')
    return height, width


def add_cfg_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--cfg-options KEY=VALUE ...`` parsed by mmengine's ``DictAction``, as mmdet's
    and mmseg's own tools take it (configs need mmengine: without it, the option
    says so when given)."""
    parser.add_argument('--cfg-options', nargs='+', action=_cfg_options_action(), default={},
                        metavar='KEY=VALUE', help=help_text)


def _cfg_options_action():
    """mmengine's ``DictAction``, with a malformed item refused in one line (it would
    raise a bare ValueError); without mmengine, an action that says it is needed."""
    try:
        from mmengine.config import DictAction
    except ImportError:
        class NeedsMMEngine(argparse.Action):
            def __call__(self, parser, namespace, values, option_string=None):
                parser.error(f'{option_string} needs mmengine (pip install mmengine)')
        return NeedsMMEngine

    class CfgOptions(DictAction):
        def __call__(self, parser, namespace, values, option_string=None):
            for item in values:
                if not re.match(r'[^=\s]+=', item):
                    parser.error(f'{option_string} {item!r}: expected KEY=VALUE')
            super().__call__(parser, namespace, values, option_string)
    return CfgOptions


def format_metrics(metrics: dict) -> str:
    width = max((len(k) for k in metrics), default=10)
    rows = [f'{"metric":<{width}}  value', f'{"-" * width}  -------']
    for key, value in metrics.items():
        rows.append(f'{key:<{width}}  {value:.4f}' if isinstance(value, float)
                    else f'{key:<{width}}  {value}')
    return '\n'.join(rows)
