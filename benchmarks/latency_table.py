"""Markdown table (one row per target, one column per mode) from a latency JSON
written by tools/benchmark_latency.py; several JSONs give one table each (each
run has its own machine caption and matmul roofs).

    python benchmarks/latency_table.py benchmarks/results/latency_cpu_512.json [MORE.json ...]
"""
import sys

from efficientvit_det.benchmark.report import read_results


def table(document) -> str:
    rows = document['results']
    modes = list(dict.fromkeys(r['mode'] for r in rows))
    keys = list(dict.fromkeys((r['target'], r['height'], r['width'], r['batch']) for r in rows))
    header = ['backbone', 'input', 'GMACs'] + [f'{m} ms' for m in modes] + [
        'best mode', 'best vs eager', '% of matmul']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for target, height, width, batch in keys:
        group = {r['mode']: r for r in rows if (r['target'], r['height'], r['width'],
                                                r['batch']) == (target, height, width, batch)}
        ok = {m: r for m, r in group.items() if r['status'] == 'ok'}
        best = min(ok.values(), key=lambda r: r['median_ms'])
        cells = [target, f'{batch}x{height}x{width}', f"{best['gmacs']:.2f}"]
        cells += [cell(ok[m]) if m in ok else '—' for m in modes]
        eager = ok.get('eager')
        cells += [best['mode'],
                  f"{eager['median_ms'] / best['median_ms']:.2f}x" if eager else '—',
                  f"{100 * best['matmul_fraction']:.0f}%"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    machine = document['machine']
    roofs = document.get('matmul_gflops_by_precision', {'fp32': document['matmul_gflops']})
    where = (machine['gpu'] if 'gpu' in machine else
             f"{machine.get('cpu', machine.get('processor'))}, {machine['threads']} threads")
    caption = (f"{where}, torch {document['versions']['torch']}; matmul "
               + ', '.join(f'{p} {g} GFLOP/s' for p, g in roofs.items())
               + " measured in the same run; median ms"
               + (" [95% interval of the median], ! = unstable (interval wider than 10% of the "
                  "median)" if any('ci95_low_ms' in r for r in rows) else '')
               + f". Command: `{document['command']}`")
    return caption + '\n\n' + '\n'.join(lines) + '\n\n' + checked(rows)


def cell(row) -> str:
    """Median, with its 95% interval when the run recorded one; ! marks unstable."""
    if row.get('ci95_low_ms') is None:
        return f"{row['median_ms']:.1f}"
    return (f"{row['median_ms']:.1f} [{row['ci95_low_ms']:.1f}–{row['ci95_high_ms']:.1f}]"
            + ('!' if row['unstable'] else ''))


def checked(rows) -> str:
    """One line on the output check: the worst error per precision, and any mismatch."""
    worst = {}
    for row in rows:
        if row.get('max_rel_err') is not None:
            worst[row['precision']] = max(worst.get(row['precision'], 0.0), row['max_rel_err'])
    if not worst:
        return 'Outputs were not checked against eager fp32 in this run.'
    mismatches = [f"{r['target']} {r['mode']} ("
                  + (f"{r['max_rel_err']:.3g}" if r['max_rel_err'] is not None else 'inf/NaN')
                  + ')' for r in rows if r['status'] == 'mismatch']
    return ('Outputs checked against eager fp32 before timing; largest relative error: '
            + ', '.join(f'{p} {e:.2g}' for p, e in worst.items())
            + ('; mismatches (left out above): ' + ', '.join(mismatches) if mismatches
               else '; no mismatch.'))


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit('usage: python benchmarks/latency_table.py RESULT.json [MORE.json ...]')
    for path in sys.argv[1:]:
        print(table(read_results(path)) + '\n')
