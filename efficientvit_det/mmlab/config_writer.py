"""A swap plan written as a config file a person reads: ``_base_`` plus the
overrides, each with a comment saying why (tools/swap_backbone.py writes it,
``swap_backbone`` loads the same text)."""
import os
import pprint
import textwrap
from typing import List


def base_reference(config: str, out: str = None) -> str:
    """``_base_`` as mmengine reads it: a package's config by its name; a file
    relative to the new file's folder when the two share more than the root (the
    pair can move together), else absolute (also when there is no new file)."""
    if '::' in config:
        return config
    config = os.path.abspath(config)
    if out is None:
        return config
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.commonpath([config, folder]) == os.path.sep:
        return config
    return os.path.relpath(config, folder)


def render_config(plan, base_ref: str) -> str:
    """The plan as a config file that inherits ``base_ref``."""
    lines = [f'# {plan.backbone} in place of the backbone of {base_ref}',
             '# (written by tools/swap_backbone.py; everything not set here is the base\'s)',
             f'_base_ = {base_ref!r}',
             f'custom_imports = dict(imports={plan.custom_imports!r}, '
             'allow_failed_imports=False)', '', 'model = dict(']
    for key in ordered_keys(plan):
        lines += textwrap.wrap(plan.why[key], 84, initial_indent='    # ',
                               subsequent_indent='    #   ')
        lines.append(f'    {key}={python_literal(plan.model[key], 4, len(key) + 1)},')
    lines.append(')')
    return '\n'.join(lines) + '\n'


def ordered_keys(plan) -> List[str]:
    """Backbone first, then what reads it, in the order a model runs."""
    first = ['backbone', 'neck']
    return [k for k in first if k in plan.model] + [k for k in plan.model if k not in first]


def describe_plan(plan) -> List[str]:
    """One line per change, for the tool to print."""
    return [f'model.{key}: {plan.why[key]}' for key in ordered_keys(plan)]


def plain(value):
    """A config value as plain dicts and lists (ConfigDict -> dict)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def python_literal(value, indent: int = 0, prefix: int = 0) -> str:
    """A value as Python: ``dict(k=v)``, one key per line when it does not fit a
    line after ``indent + prefix`` characters; a list of dicts one per line."""
    value = plain(value)
    pad = ' ' * (indent + 4)
    if isinstance(value, dict):
        items = [f'{k}={python_literal(v, indent + 4, len(k) + 1)}' for k, v in value.items()]
        text = f'dict({", ".join(items)})'
        if len(text) + indent + prefix <= 88 and '\n' not in text:
            return text
        return 'dict(\n' + ''.join(f'{pad}{item},\n' for item in items) + ' ' * indent + ')'
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return '[\n' + ''.join(f'{pad}{python_literal(v, indent + 4)},\n' for v in value) + \
            ' ' * indent + ']'
    return pprint.pformat(value, width=10 ** 6, sort_dicts=False)
