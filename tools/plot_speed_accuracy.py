"""Speed-accuracy chart from our latency JSON and a table of accuracies.

    python tools/plot_speed_accuracy.py LATENCY.json [--accuracy CSV] [--metric M]
        [--mode best] [--out PNG]

The code is ``efficientvit_det.cli.plot_speed_accuracy``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.plot_speed_accuracy import main

if __name__ == '__main__':
    run(main)
