"""``tools/model_index.py``: the model index (model-index.yml + metafiles/*.yml): check it
against the files it
names and render README's config table from it.

    python tools/model_index.py                  # check, then print the table
    python tools/model_index.py --write-readme   # check, then put the table into README.md
"""
import argparse
import os.path as osp
import sys

from ..fileio import atomic_path
from ..mmlab.model_index import check_index, render_table, replace_table, repo_root


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--write-readme', action='store_true',
                        help="replace README.md's generated table with the current one")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    problems = check_index()
    if problems:
        sys.exit('model index does not match the files it names:\n  ' + '\n  '.join(problems))
    table = render_table()
    if not args.write_readme:
        print(table)
        return table
    readme = osp.join(repo_root(), 'README.md')
    with open(readme) as f:
        text = f.read()
    with atomic_path(readme) as partial, open(partial, 'w') as f:
        f.write(replace_table(text, table))
    print(f'{readme}: config table rewritten from the model index')
    return table
