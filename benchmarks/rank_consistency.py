"""Do two runs of the same latency command rank the rows alike?

    python benchmarks/rank_consistency.py FIRST.json SECOND.json [--out RESULT.json]

Rows are matched by (target, mode, shape, batch). A pair of rows is "separated"
in a run when their medians' 95% intervals do not overlap; every pair separated
in both runs must come in the same order in both (exit 1 otherwise). Pairs
separated in one run only are listed with the other run's medians: what a table
may claim as a ranking is what survives a re-run.
"""
import argparse
import itertools
import json
import sys

from efficientvit_det.benchmark.report import read_results


def load(path):
    rows = read_results(path)['results']
    return {(r['target'], r['mode'], r['height'], r['width'], r['batch']): r for r in rows
            if r['status'] == 'ok' and r.get('ci95_low_ms') is not None}


def order(a, b):
    """-1 / 1 when a's interval lies wholly below / above b's, else 0 (overlap)."""
    if a['ci95_high_ms'] < b['ci95_low_ms']:
        return -1
    if b['ci95_high_ms'] < a['ci95_low_ms']:
        return 1
    return 0


def compare(first, second):
    keys = sorted(set(first) & set(second))
    report = dict(rows=len(keys), pairs=0, separated_in_both=0, agreeing=0,
                  contradictions=[], separated_in_one=0)
    for a, b in itertools.combinations(keys, 2):
        if a[2:] != b[2:]:  # rank rows of the same input only
            continue
        report['pairs'] += 1
        one, two = order(first[a], first[b]), order(second[a], second[b])
        if one and two:
            report['separated_in_both'] += 1
            if one == two:
                report['agreeing'] += 1
            else:
                report['contradictions'].append(
                    dict(a=list(a), b=list(b),
                         first=[first[a]['median_ms'], first[b]['median_ms']],
                         second=[second[a]['median_ms'], second[b]['median_ms']]))
        elif one or two:
            report['separated_in_one'] += 1
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('first')
    parser.add_argument('second')
    parser.add_argument('--out')
    args = parser.parse_args(argv)
    report = compare(load(args.first), load(args.second))
    print(describe(report))
    if args.out:
        from efficientvit_det.fileio import atomic_path  # an interrupted write keeps the old file
        with atomic_path(args.out) as partial, open(partial, 'w') as f:
            json.dump(dict(report, first=args.first, second=args.second), f, indent=2)
    return 1 if report['contradictions'] else 0


def describe(report) -> str:
    """A :func:`compare` report in words, a line per contradiction."""
    return '\n'.join([
        f"{report['rows']} rows in both runs, {report['pairs']} pairs on the same input: "
        f"{report['separated_in_both']} separated (intervals apart) in both runs, "
        f"{report['agreeing']} of them in the same order; {report['separated_in_one']} "
        f"separated in one run only"] + [
        f"  CONTRADICTION {c['a'][:2]} vs {c['b'][:2]}: {c['first']} then {c['second']}"
        for c in report['contradictions']])


if __name__ == '__main__':
    sys.exit(main())
