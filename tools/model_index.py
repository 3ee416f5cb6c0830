"""Check the model index against the files it names; render README's config table.

    python tools/model_index.py [--write-readme]

The code is ``efficientvit_det.cli.model_index``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.model_index import main

if __name__ == '__main__':
    run(main)
