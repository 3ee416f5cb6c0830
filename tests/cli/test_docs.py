"""README and docs/ kept true: every command they show parses with its tool's own
parser, the tools reference names each tool's flags (no more, no fewer), and every
number README quotes comes from the committed file named beside it."""
import glob
import importlib
import json
import os
import re
import shlex

import pytest
import yaml

from tests.support import ROOT

DOCS = [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
#: flags a tool takes that no user types (torchrun passes the rank itself)
UNDOCUMENTED = {'--help', '--local_rank', '--local-rank'}


def _tool_module(script: str):
    """The cli module behind ``tools/....py`` (the script imports its ``main``)."""
    source = open(os.path.join(ROOT, script)).read()
    module, = re.findall(r'from (efficientvit_det\.cli\.(?!common)\w+) import', source)
    return importlib.import_module(module)


def _shell_commands(path: str):
    """(line, words) of each ``python tools/...`` command in the file's bash blocks,
    continuation lines joined and comments dropped."""
    commands, pending = [], ''
    for block in re.findall(r'```bash\n(.*?)```', open(path).read(), flags=re.S):
        for line in block.splitlines():
            if line.rstrip().endswith('\\'):
                pending += line.rstrip()[:-1] + ' '
                continue
            words = shlex.split(pending + line, comments=True)
            pending = ''
            if words[:2] and words[0] == 'python' and words[1].startswith('tools/'):
                commands.append((' '.join(words), words[1:]))
    return commands


DOCUMENTED_COMMANDS = [command for path in DOCS for command in _shell_commands(path)]


def test_the_docs_show_commands_of_every_kind():
    assert len(DOCUMENTED_COMMANDS) >= 25
    assert {words[0] for _, words in DOCUMENTED_COMMANDS} >= {
        'tools/train.py', 'tools/test.py', 'tools/infer.py', 'tools/benchmark_latency.py',
        'tools/export_onnx.py', 'tools/make_toy_data.py'}


@pytest.mark.parametrize('line, words', DOCUMENTED_COMMANDS,
                         ids=[line[:80] for line, _ in DOCUMENTED_COMMANDS])
def test_every_documented_command_parses(line, words):
    parser = _tool_module(words[0]).build_parser()
    try:
        parser.parse_args(words[1:])
    except SystemExit:
        pytest.fail(f'{line!r} does not parse with {words[0]}')


def _reference_rows():
    """(script, usage cell) of each ``python tools/...`` row of docs/tools.md."""
    text = open(os.path.join(ROOT, 'docs', 'tools.md')).read()
    return re.findall(r'^\| `python (tools/\S+\.py)([^`]*)` \|', text, flags=re.M)


def test_the_tools_reference_names_every_flag_and_no_other():
    rows = _reference_rows()
    scripts = sorted(p[len(ROOT) + 1:] for p in glob.glob(os.path.join(ROOT, 'tools', '**', '*.py'),
                                                          recursive=True))
    assert sorted(script for script, _ in rows) == scripts  # every tool, once
    for script, usage in rows:
        parser = _tool_module(script).build_parser()
        flags = {option: action for action in parser._actions
                 for option in action.option_strings if option.startswith('--')}
        named = set(re.findall(r'(--[a-z][a-z-]*)', usage))
        assert named == set(flags) - UNDOCUMENTED, (script, named ^ (set(flags) - UNDOCUMENTED))
        # a choice list written a|b|c is the parser's own
        for flag, choices in re.findall(r'(--[a-z-]+) ([a-z0-9]+(?:\\\|[a-z0-9]+)+)', usage):
            if flags[flag].choices is not None:
                assert choices.split('\\|') == list(flags[flag].choices), (script, flag)


def _to_ms(text: str) -> float:
    value, unit = text.split()
    return float(value) * (1000 if unit == 's' else 1)


def test_readme_times_come_from_the_results_named_beside_them():
    """Each row of README's headline table: the time, rounded as printed, is the
    median of the row its source names (file, target, mode, shape) at batch 1."""
    readme = open(os.path.join(ROOT, 'README.md')).read()
    rows = re.findall(r'^\| [^|]+ \| ([\d.]+ m?s) \| `(benchmarks/results/\S+\.json)` '
                      r'(\S+) (\S+) (\d+)x(\d+) \|$', readme, flags=re.M)
    assert len(rows) >= 6
    for time, path, target, mode, height, width in rows:
        results = json.load(open(os.path.join(ROOT, path)))['results']
        row, = [r for r in results if (r['target'], r['mode'], r['height'], r['width'],
                                       r['batch']) == (target, mode, int(height), int(width), 1)]
        printed = time.split()[0]
        digits = len(printed.split('.')[-1]) if '.' in printed else 0
        scale = 1000 if time.endswith(' s') else 1
        # the printed value is the median rounded to the digits shown
        assert abs(row['median_ms'] - _to_ms(time)) / scale <= 0.5 * 10 ** -digits + 1e-9, (
            time, row['median_ms'], path, target, mode)


def test_readme_published_accuracy_is_the_model_index():
    """The model zoo's published APs are the ones the metafiles carry (the papers')."""
    readme = open(os.path.join(ROOT, 'README.md')).read()
    rows = re.findall(r'^\| (?:Mask R-CNN|RetinaNet) \| [^|]+ \| yes \| 1x \| ([^|]+) \| ([^|]+) \| '
                      r'[^|]+ \| \[config\]\((configs/[^)]+)\)', readme, flags=re.M)
    assert len(rows) == 4
    published = {}
    for metafile in glob.glob(os.path.join(ROOT, 'metafiles', '*.yml')):
        for model in yaml.safe_load(open(metafile))['Models']:
            metrics = {}
            for result in model.get('Results', []):
                metrics.update(result['Metrics'])
            published[model['Config']] = metrics
    for box, mask, config in rows:
        metrics = published[config]
        for text, key in ((box, 'box AP'), (mask, 'mask AP')):
            value = text.strip()
            expected = metrics.get(key)
            assert (value in ('—', 'not published')) == (expected is None), (config, key)
            if expected is not None:
                assert float(value) == expected, (config, key)


def _expand_braces(word: str):
    """``a_part{1,2}.json`` -> ``a_part1.json``, ``a_part2.json`` (as bash does)."""
    found = re.search(r'\{([^}]*)\}', word)
    if not found:
        return [word]
    return [expanded for choice in found.group(1).split(',')
            for expanded in _expand_braces(word[:found.start()] + choice + word[found.end():])]


def test_benchmark_tables_are_rendered_from_their_results():
    """Each ``python benchmarks/latency_table.py FILE ...`` in benchmarks/README.md:
    what the script renders from the committed files (caption with machine and
    command, table, output check) stands in the page verbatim, not pasted by hand."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'latency_table', os.path.join(ROOT, 'benchmarks', 'latency_table.py'))
    latency_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency_table)
    page = open(os.path.join(ROOT, 'benchmarks', 'README.md')).read()
    commands = re.findall(r'python benchmarks/latency_table\.py ((?:[^`\n\\]|\\\n)+)', page)
    files = [path for command in commands for word in command.replace('\\\n', ' ').split()
             for path in _expand_braces(word)]
    assert len(files) >= 6
    for path in files:
        rendered = latency_table.table(json.load(open(os.path.join(ROOT, path))))
        for block in rendered.split('\n\n'):
            assert block in page, f'benchmarks/README.md: the table of {path} is not ' \
                                  f'what benchmarks/latency_table.py renders: {block[:80]}'


def test_the_benchmark_scripts_tables_stand_in_the_page_as_written():
    """The tables the benchmark scripts write beside their JSON (``results/*.md``)
    stand in benchmarks/README.md as the scripts wrote them."""
    page = open(os.path.join(ROOT, 'benchmarks', 'README.md')).read()
    written = glob.glob(os.path.join(ROOT, 'benchmarks', 'results', '*.md'))
    assert len(written) >= 2
    for path in written:
        for block in open(path).read().split('\n\n'):
            assert block.strip() in page, f'{path}: not in benchmarks/README.md as written'


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_links_between_the_pages_reach_a_file_and_a_heading():
    pages = DOCS + [os.path.join(ROOT, 'benchmarks', name) for name in ('README.md', 'LOG.md')]
    for page in pages:
        text = re.sub(r'```.*?```', '', open(page).read(), flags=re.S)
        for target in re.findall(r'\]\(([^)\s]+)\)', text):
            if re.match(r'[a-z]+:', target):
                continue  # a web address
            path, _, anchor = target.partition('#')
            path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            assert os.path.exists(path), f'{page}: link to {target}: no such file'
            if anchor:
                headings = re.findall(r'^#+ (.+)$', open(path).read(), flags=re.M)
                assert anchor in {_anchor(h) for h in headings}, f'{page}: no heading #{anchor}'
