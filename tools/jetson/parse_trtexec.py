"""Turn a trtexec log into our latency JSON/CSV and print the table.

    python tools/jetson/parse_trtexec.py LOG --target shvit_s4 --shape 512x512 --batch 1
        [--device "Jetson AGX Orin"] [--out OUT]

The code is ``efficientvit_det.cli.parse_trtexec``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.parse_trtexec import main

if __name__ == '__main__':
    run(main)
