"""Every command the documentation shows works as written.

The commands are the shell lines of README.md's and launch/README.md's code
blocks and of every `configs/*.py` docstring (continuation lines ending in
`\\` joined, `for ...; do ...; done` loops expanded), each with its file and
line. A failing command's message starts with them.

Every command is first checked without running it (`check`): parsed by the
CLI's own argparse parser; its config loaded with its `:arg`, its
`--config.*` overrides applied and validated; every path it reads either a
file of the repository, written by an earlier command of the same document
(for a config's docstring, also by README.md's, whose `make demo` run
`configs/tufa_fewshot.py` starts from) or a file of the reader's own
(`USER_INPUTS`); a `--checkpoint RUN/checkpoints/N` a step that documented
run keeps (from its `train.steps`, `checkpoint_every`, `keep_checkpoints`);
a `--config.data.data_dir` one that earlier `jaxlm build` commands filled
with every TFDS dataset the config reads. `make TARGET` is checked with
`make -n` and the launchers with `DRY_RUN=1`; the jaxlm commands they print
are checked the same way.

Then every command not in `PARSE_ONLY` runs, in order, in a temporary folder
(`HOME` there too, so `~/...` stays inside), with `cli.main`: train commands
of the TUFA family on `TINY` settings with as many one-step checkpoints as
the documented run keeps (a documented step N maps to the tiny step at N's
place); `photo.jpg` is matplotlib's sample photo; a `jaxlm build`'s
`--manual_dir` is first filled by `jaxlm fake-data` in the dataset's
original format. A command identical to one already run is not run twice.
Each must exit 0 and write what the check said it writes.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import glob
import itertools
import dataclasses
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Documented commands that are only checked, never run, and why. Anything
# else a document shows runs: a new command is run by default.
PARSE_ONLY = {
    r'^make (demo|test)\b': 'installs a venv and trains or tests for '
                            'minutes (checked with make -n)',
    r'^\. \.venv/bin/activate$': 'activates the venv; this test runs jaxlm '
                                 'in-process',
    r'^(\w+=\S* )*(sbatch .*)?launch/': 'starts training on a host or '
                                        'cluster (checked with DRY_RUN=1)',
    r'^jaxlm train --config configs/(?!tufa_demo\.py )': 'a real-data recipe, '
        'or another family whose compile does not fit this file\'s 45 s '
        '(each family trains tiny in tests/train/)',
    r'^jaxlm convert ': 'needs official PyTorch weights downloaded by hand',
    r'--checkpoint weights/': 'official weights converted by jaxlm convert',
    r'--workdir RUN ': 'needs a trained run of the 3D-query family',
    r'^jaxlm build aflw19 ': 'jaxlm fake-data aflw19 writes training faces '
                             'only (no test split to build)',
    r'^jaxlm export .*--(format (onnx|tflite)|batch 0|detector)': 'another '
        'export compile (~10 s; TFLite ~20 s); tests/test_export.py and '
        'tests/test_annotate.py (--detector) run every form and check it in '
        'its runtime',
    r'^tensorboard ': 'a web server that runs until stopped (the tb extra); '
                      'its --logdir must be a documented run\'s tb folder',
    r'^pip install ': 'installs packages from PyPI (the extras it names are '
                      'checked against pyproject.toml)',
    r'^jupyter lab ': 'starts a JupyterLab server; tests/test_notebooks.py '
                      'runs the notebooks in a kernel',
}

# Paths that stand for the reader's own files (downloads, photos, buckets):
# checked as such instead of as repository files.
USER_INPUTS = {
    r'(^|/)downloads/': 'a dataset downloaded by hand',
    r'\.(pth|safetensors)$': 'PyTorch weights downloaded by hand',
    r'^(Prompt|Config)/.*\.npz$': 'an official repository\'s file',
    r'(^|/)(photo|face|other|frame)\.jpg$': 'a photo of your own',
    r'^gs://': 'a bucket of your own',
    r'^RUN(/|$)': 'a trained run of the family the section is about',
}

# Family -> overrides that make its training a few seconds on a CPU.
TINY = {
    'tufa': [
        '--config.model.variant=Ti/16:depth=1:width=32:num_heads=2:mlp_dim=64',
        '--config.model.decoder_layers=1', '--config.model.decoder_heads=2',
        '--config.model.decoder_mlp=32', '--config.model.head_hidden=16',
        '--config.data.image_size=32', '--config.data.mean_shape_samples=8',
        '--config.data.num_anchors=8', '--config.data.threads=1',
        '--config.train.batch_size=2', '--config.optim.warmup_steps=0',
        '--config.eval.batch_size=4', '--config.eval.overlays=2'],
}

# matplotlib (a dependency) ships this photo; the cascade finds its face at
# the box README.md's --box example gives.
SAMPLE_PHOTO = 'grace_hopper.jpg'

PROGRAMS = ('jaxlm', 'python', 'python3', 'make', '.', 'source', 'for',
            'sbatch', 'bash', 'tensorboard', 'pip', 'jupyter')
_ENV = re.compile(r'^(\w+=\S*\s+)*')
DOCS = ['README.md', 'launch/README.md'] + sorted(
    f'configs/{p.name}' for p in (ROOT / 'configs').glob('*.py'))


@dataclasses.dataclass
class Command:
  where: str  # 'README.md:31'
  text: str  # continuation lines joined

  @property
  def argv(self) -> list[str]:
    return shlex.split(self.text, comments=True)


class DocError(Exception):
  """A documented command that does not work as written."""


def _is_command(line: str) -> bool:
  s = _ENV.sub('', line.strip())
  return s.split(' ', 1)[0] in PROGRAMS or s.startswith('launch/')


def _join(numbered, doc: str) -> list[Command]:
  """(line number, text) of a code region -> its commands."""
  out, i = [], 0
  while i < len(numbered):
    n, line = numbered[i]
    i += 1
    if not _is_command(line):
      continue
    parts = [line.strip()]
    while (parts[-1].endswith('\\') or (parts[0].startswith('for ') and
                                        'done' not in parts[-1].split())) \
        and i < len(numbered):
      parts[-1] = parts[-1].rstrip('\\').rstrip()
      parts.append(numbered[i][1].strip())
      i += 1
    out += _expand_loop(Command(f'{doc}:{n}', ' '.join(parts)))
  return out


def _expand_loop(cmd: Command) -> list[Command]:
  m = re.fullmatch(r'for (\w+) in (.+?); do (.+?);? done', cmd.text)
  if not m:
    return [cmd]
  var, values, body = m.groups()
  return [Command(cmd.where, re.sub(r'\$\{?%s\}?' % var, v, body))
          for v in values.split()]


def markdown_commands(text: str, doc: str) -> list[Command]:
  """Commands of fenced code blocks and of 4-space indented lines."""
  regions, fenced, current = [], False, []
  for n, line in enumerate(text.splitlines(), 1):
    if line.lstrip().startswith('```'):
      if fenced:
        regions.append(current)
      fenced, current = not fenced, []
    elif fenced:
      current.append((n, line))
    elif line.startswith('    ') and (current or _is_command(line)):
      current.append((n, line))
    elif current:
      regions.append(current)
      current = []
  regions.append(current)
  return [c for r in regions for c in _join(r, doc)]


def docstring_commands(text: str, doc: str) -> list[Command]:
  """Commands of a module docstring: lines indented by two or more."""
  tree = ast.parse(text)
  if not (tree.body and isinstance(tree.body[0], ast.Expr) and
          isinstance(tree.body[0].value, ast.Constant)):
    return []
  node = tree.body[0]
  lines = text.splitlines()
  region = [(n, lines[n - 1]) for n in range(node.lineno, node.end_lineno + 1)
            if lines[n - 1].startswith('  ')]
  return _join(region, doc)


def commands(doc: str, text: str | None = None) -> list[Command]:
  text = (ROOT / doc).read_text() if text is None else text
  if doc.endswith('.md'):
    return markdown_commands(text, doc)
  return docstring_commands(text, doc)


def parse_only_reason(cmd: Command) -> str | None:
  for pattern, reason in PARSE_ONLY.items():
    if re.search(pattern, cmd.text):
      return reason
  return None


# --------------------------------------------------------------------------
# Checking without running


@dataclasses.dataclass
class Run:
  """A run folder a documented command writes, as the docs would leave it."""
  config: object  # the validated ConfigDict
  kept: list[int]  # the checkpoint steps it keeps, oldest first


@dataclasses.dataclass
class State:
  """What the commands of a document have written so far."""
  files: set = dataclasses.field(default_factory=set)
  runs: dict = dataclasses.field(default_factory=dict)
  data_dirs: dict = dataclasses.field(default_factory=dict)  # -> TFDS names


def _norm(path: str) -> str:
  from jaxlm.config import expand_path
  path = expand_path(str(path), 'path')
  return path if '://' in path else os.path.normpath(path)


def _user_input(path: str) -> str | None:
  for pattern, reason in USER_INPUTS.items():
    if re.search(pattern, path):
      return reason
  return None


def _need(path: str, state: State, what: str):
  """`path` exists in the repository, was written earlier or is the
  reader's own; DocError otherwise."""
  p = _norm(path)
  if glob.has_magic(p):  # a pattern: the folder it searches must be there
    p = '/'.join(itertools.takewhile(lambda part: not glob.has_magic(part),
                                     p.split('/')))
  if _user_input(p) or p in state.files or p in state.runs or (
      p in state.data_dirs) or (ROOT / p).exists():
    return
  raise DocError(f'{what} {path}: not in the repository and no earlier '
                 f'command writes it')


def kept_steps(cfg) -> list[int]:
  """The checkpoint steps a finished run of `cfg` keeps, oldest first."""
  t = cfg.train
  saved = sorted(set(range(t.checkpoint_every, t.steps + 1,
                           t.checkpoint_every)) | {t.steps})
  return saved[-t.keep_checkpoints:]


def _target(args, state: State) -> tuple[str, Run, int | None]:
  """(run folder, its Run, step or None) that --workdir/--checkpoint
  names."""
  from jaxlm import pretrained
  path = args.checkpoint or args.workdir
  if path is None:
    raise DocError(f'jaxlm {args.command} needs --workdir or --checkpoint')
  p = _norm(path)
  if (args.checkpoint and p in pretrained.REGISTRY) or _user_input(p):
    return p, None, None
  m = re.fullmatch(r'(.+)/checkpoints/(\d+)', p)
  run, step = (m.group(1), int(m.group(2))) if m else (p, None)
  if run not in state.runs:
    raise DocError(f'{path}: no earlier command trains or converts this run')
  if step is not None and step not in state.runs[run].kept:
    raise DocError(f'{path}: the documented run keeps steps '
                   f'{state.runs[run].kept}, not {step}')
  return run, state.runs[run], step


def _config(spec, overrides, state: State, base=None):
  """Loads (or copies `base`), overrides and validates a config; checks its
  path keys."""
  from jaxlm import config as config_lib
  from jaxlm.errors import JaxlmError
  try:
    cfg = (copy.deepcopy(base) if base is not None else
           config_lib.load_config(spec))
    config_lib.apply_overrides(cfg, overrides)
    cfg = config_lib.validate(cfg)
  except JaxlmError as e:
    raise DocError(str(e)) from None
  for key, value in overrides.items():
    if key.startswith('init.') and value:
      _need(value, state, f'--config.{key}')
  tfds_names = {e.tfds_name for g in ('train', 'eval')
                for e in cfg.data[g].values() if e.get('source') == 'tfds'}
  if tfds_names:
    data_dir = cfg.data.data_dir
    if _user_input(data_dir):
      pass
    elif data_dir not in state.data_dirs:
      raise DocError(f'data.data_dir {data_dir or "(empty)"}: no earlier '
                     f'jaxlm build writes it (needs {sorted(tfds_names)})')
    elif tfds_names - state.data_dirs[data_dir]:
      raise DocError(f'data.data_dir {data_dir}: '
                     f'{sorted(tfds_names - state.data_dirs[data_dir])} not '
                     f'built by the commands before')
  return cfg


def _writes_eval(state: State, out_dir: str, cfg):
  state.files.add(out_dir)
  for f in ('ced.png', 'report.md'):
    state.files.add(f'{out_dir}/{f}')
  for name in cfg.data.eval:
    for f in (f'{name}.json', f'prompts_{name}.npy', f'overlay_{name}.png'):
      state.files.add(f'{out_dir}/{f}')


def check_jaxlm(argv: list[str], state: State):
  """One `jaxlm ...` command (argv without 'jaxlm'), as `cli.main` would
  take it, against what earlier commands wrote; records what it writes."""
  from jaxlm import cli, plots
  from jaxlm import config as config_lib
  from jaxlm.errors import JaxlmError
  err = io.StringIO()
  try:
    with contextlib.redirect_stderr(err):
      args, extra = cli.build_parser().parse_known_args(argv)
  except SystemExit:
    raise DocError(err.getvalue().strip().splitlines()[-1]) from None
  try:
    if extra and args.command not in ('train', 'eval', 'convert'):
      raise JaxlmError(f'unrecognised arguments: {" ".join(extra)}')
    overrides = config_lib.parse_override_args(extra)
    cli._expand_path_flags(args)  # pylint: disable=protected-access
  except JaxlmError as e:
    raise DocError(str(e)) from None
  cmd = args.command
  if cmd == 'predict':
    if args.out and Path(args.out).suffix.lower() not in plots.IMAGE_SUFFIXES:
      raise DocError(f'--out {args.out}: not an image file name')
    state.files |= {_norm(v) for v in (args.out, args.json) if v}
  if cmd == 'train':
    cfg = _config(args.config, overrides, state)
    run = _norm(args.workdir)
    state.runs[run] = Run(cfg, kept_steps(cfg))
    state.files.add(f'{run}/tb')  # TensorBoard event files
    if args.eval:
      _writes_eval(state, f'{run}/eval', cfg)
  elif cmd == 'eval' and args.suite:
    from jaxlm import eval_suites
    try:
      eval_suites.select(args.suite)
    except JaxlmError as e:
      raise DocError(str(e)) from None
    run, info, step = _target(args, state)
    if info is not None:
      _config(None, overrides, state, info.config)
      out = _norm(args.out or (f'{run}/eval_suite' if step is None else
                               f'{run}/eval_suite_{step}'))
      state.files |= {out} | {f'{out}/suite.{x}' for x in ('md', 'csv',
                                                           'json')}
  elif cmd == 'eval':
    run, info, step = _target(args, state)
    if info is not None:
      cfg = _config(args.config, overrides, state,
                    None if args.config else info.config)
      out = args.out or (f'{run}/eval' if step is None else
                         f'{run}/eval_{step}')
      _writes_eval(state, _norm(out), cfg)
  elif cmd in ('predict', 'query', 'annotate', 'export'):
    run, info, _ = _target(args, state)
    for path in ([args.image] if getattr(args, 'image', None) else []) + (
        getattr(args, 'inputs', None) or []):
      _need(path, state, 'input')
    if getattr(args, 'box', None):
      from jaxlm.predict import parse_box
      try:
        parse_box(args.box)
      except JaxlmError as e:
        raise DocError(str(e)) from None
    if getattr(args, 'crop', 'face') not in ('face', 'none'):
      raise DocError(f'--crop {args.crop}: expected face or none')
    layout = getattr(args, 'layout', None)
    if layout and layout.endswith('.npy'):
      _need(layout, state, '--layout')
    elif layout and info is not None:
      from jaxlm import models
      from jaxlm.data import query_tables
      train = info.config.data.train
      known = set(train) | {e.layout for e in train.values()}
      if models.family_of(info.config.model).prompt_dim == 3:
        known |= set(query_tables.known_layouts())
      if layout not in known:
        raise DocError(f'--layout {layout}: not a layout of the run '
                       f'({", ".join(sorted(known))})')
    if cmd in ('query', 'annotate', 'export'):
      state.files.add(_norm(args.out))
  elif cmd == 'synth':
    from jaxlm.data import synthetic
    if args.layout not in synthetic.SYNTHETIC_LAYOUTS:
      raise DocError(f'--layout {args.layout}: not a synthetic layout')
    state.files.add(_norm(args.out))
  elif cmd == 'fake-data':
    from jaxlm.data.formats import fake
    if args.name not in fake.WRITERS:
      raise DocError(f'fake-data {args.name}: unknown dataset')
    state.files.add(_norm(args.out))
  elif cmd == 'build':
    from jaxlm.data.tfds import BUILDERS
    name, _, variant = args.name.partition('/')
    if name not in BUILDERS or variant and variant not in [
        c.name for c in BUILDERS[name].BUILDER_CONFIGS]:
      raise DocError(f'build {args.name}: unknown dataset')
    _need(args.manual_dir, state, '--manual_dir')
    state.data_dirs.setdefault(_norm(args.data_dir), set()).add(args.name)
  elif cmd == 'convert':
    for path in [args.src, args.init] + [
        p.split('=', 1)[-1].split(':')[0] for p in args.prompts or []]:
      if path:
        _need(path, state, 'input')
    dst = _norm(args.dst)
    if args.kind in ('tufa', 'slpt', 'dslpt'):
      default = dict(tufa='tufa_vits16_multi.py',
                     slpt='slpt_hrnet_lite_wflw.py',
                     dslpt='dslpt_hrnet_wflw.py')[args.kind]
      try:
        cfg = config_lib.validate(config_lib.apply_overrides(
            config_lib.load_config(args.config or f'configs/{default}'),
            overrides))
      except JaxlmError as e:
        raise DocError(str(e)) from None
      state.runs[dst] = Run(cfg, [])
    else:
      state.files.add(dst)
  elif cmd == 'pretrained':
    from jaxlm import pretrained
    if args.name and args.name not in pretrained.REGISTRY:
      raise DocError(f'pretrained {args.name}: unknown name')


def _jaxlm_lines(output: str) -> list[list[str]]:
  """The jaxlm commands (argv after 'jaxlm') `make -n` or a launcher's dry
  run printed, also inside a remote `--command=...`."""
  out = []
  for line in output.replace('\\\n', ' ').splitlines():
    try:
      out += _jaxlm_in(shlex.split(line[2:] if line.startswith('+ ')
                                   else line))
    except ValueError:  # not shell (make's echo text)
      continue
  return out


def _jaxlm_in(words: list[str]) -> list[list[str]]:
  from jaxlm import cli
  parser = cli.build_parser()
  subcommands = next(a for a in parser._actions
                     if a.dest == 'command').choices
  found = []
  for i, w in enumerate(words):
    if w.startswith('--command='):
      found += _jaxlm_in(shlex.split(w[len('--command='):]))
    elif (w == 'jaxlm' or w.endswith('/jaxlm')) and i + 1 < len(words) and (
        words[i + 1] in subcommands):
      rest = []
      for a in words[i + 1:]:
        if a in ('&', '&&', '|', ';') or a.startswith(('>', '2>')):
          break
        rest.append(a)
      found.append([a for a in rest if a != '--no-progress'])
  return found


def _check_pip(args: list[str]):
  """`pip install` of this package: every extra it names is one of
  pyproject.toml's."""
  import tomllib
  if args[:1] != ['install']:
    raise DocError(f'pip {" ".join(args)}: only pip install is checked')
  project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
  extras = set(project.get('optional-dependencies', {}))
  for arg in args[1:]:
    m = re.fullmatch(r'(\.|' + project['name'] + r')\[([\w,-]+)\]', arg)
    if m:
      unknown = set(m.group(2).split(',')) - extras
      if unknown:
        raise DocError(f'pip install {arg}: no extra {sorted(unknown)} in '
                       f'pyproject.toml ({", ".join(sorted(extras))})')


def check(cmd: Command, state: State):
  """Checks one documented command without running it (DocError)."""
  argv = cmd.argv
  env = {}
  while argv and re.fullmatch(r'\w+=\S*', argv[0]):
    k, v = argv.pop(0).split('=', 1)
    env[k] = v
  prog = argv[0]
  if prog == 'jaxlm':
    check_jaxlm(argv[1:], state)
  elif prog == 'make':
    r = subprocess.run(['make', '-n', '-C', str(ROOT), *argv[1:]],
                       capture_output=True, text=True, check=False)
    if r.returncode:
      raise DocError(f'make -n: {r.stderr.strip()}')
    for m in re.finditer(r'-m venv (\S+)', r.stdout):
      state.files.add(_norm(f'{m.group(1)}/bin/activate'))
    for jaxlm_argv in _jaxlm_lines(r.stdout):
      check_jaxlm(jaxlm_argv, state)
  elif prog in ('.', 'source'):
    _need(argv[1], state, 'sourced file')
  elif prog in ('python', 'python3'):
    _need(argv[1], state, 'script')
  elif prog == 'tensorboard':
    if '--logdir' not in argv[:-1]:
      raise DocError('tensorboard: no --logdir')
    _need(argv[argv.index('--logdir') + 1], state, '--logdir')
  elif prog == 'pip':
    _check_pip(argv[1:])
  elif prog == 'jupyter':
    if argv[1:2] != ['lab']:
      raise DocError(f'jupyter {" ".join(argv[1:])}: only jupyter lab is '
                     f'checked')
    for path in argv[2:]:
      if not path.startswith('-'):
        _need(path, state, 'jupyter lab folder')
  elif prog in ('sbatch', 'bash') or prog.startswith('launch/'):
    script = next(a for a in argv if a.startswith('launch/'))
    args = argv[argv.index(script) + 1:]
    r = subprocess.run(['bash', script, *args], cwd=ROOT, text=True,
                       capture_output=True, check=False,
                       env=dict(os.environ, **env, DRY_RUN='1'))
    if r.returncode:
      raise DocError(f'{script} (DRY_RUN=1): {r.stderr.strip()}')
    printed = _jaxlm_lines(r.stdout)
    if not printed:
      raise DocError(f'{script} (DRY_RUN=1) printed no jaxlm command')
    for jaxlm_argv in printed:
      check_jaxlm(jaxlm_argv, state)
  else:
    raise DocError(f'{prog}: no rule to check this program')


def check_doc(doc: str, state: State, text: str | None = None) -> list[str]:
  """Checks every command of `doc` in order; the failures, each starting
  with its file:line."""
  failures = []
  for cmd in commands(doc, text):
    try:
      check(cmd, state)
    except DocError as e:
      failures.append(f'{cmd.where}: `{cmd.text}`: {e}')
  return failures


@pytest.fixture(scope='module')
def readme_state():
  state = State()
  return state, check_doc('README.md', state)


def test_every_config_docstring_shows_its_training_command():
  for doc in DOCS:
    if doc.startswith('configs/') and 'def get_config' in (
        ROOT / doc).read_text():
      trains = [c for c in commands(doc) if c.argv[:2] == ['jaxlm', 'train']
                and any(a.split(':')[0] == doc for a in c.argv)]
      assert trains, f'{doc}: its docstring shows no jaxlm train command'


@pytest.mark.parametrize('doc', DOCS)
def test_documented_commands_check_without_running(doc, readme_state):
  state, readme_failures = readme_state
  failures = (readme_failures if doc == 'README.md' else
              check_doc(doc, copy.deepcopy(state)))
  assert not failures, '\n'.join(failures)


def test_checks_name_file_and_line_of_a_broken_command():
  text = '\n'.join([
      'x', '```sh',
      'jaxlm train --config configs/tufa_demo.py --workdir w --eval',
      'jaxlm eval --checkpoint w/checkpoints/1200',  # line 4: not kept
      'jaxlm predict --workdir w --image w/nothing.png',  # 5: not written
      'jaxlm predict --workdir w --image face.jpg --layout syn19',  # 6
      'jaxlm train --config configs/tufa_demo.py --workdir v \\',
      '    --config.train.stepz=3',  # 7: unknown key
      'jaxlm eval --workdir w --bogus',  # 9: unknown flag
      'jaxlm train --config configs/tufa_vits16_multi.py --workdir u',  # 10
      'jaxlm predict --workdir w --image face.jpg --crop none --layout '
      'syn98 --out w/p.png',  # 11: fine
      'jaxlm eval --workdir w --suite wflw,nope',  # 12: unknown suite
      "pip install -e '.[notebook]'",  # 13: no such extra
      'jupyter lab notebooks/',  # 14: fine
      '```'])
  failures = check_doc('X.md', State(), text)
  assert [f.split(':')[1] for f in failures] == ['4', '5', '6', '7', '9',
                                                 '10', '12', '13'], failures
  assert "unknown suite 'nope'" in failures[6]
  assert 'keeps steps [1000, 1500, 2000], not 1200' in failures[0]
  assert "unknown config key 'train.stepz'" in failures[3]
  assert 'no earlier jaxlm build writes it' in failures[5]
  assert "no extra ['notebook'] in pyproject.toml" in failures[7]


def test_parse_only_table_matches_documented_commands():
  everything = [c for d in DOCS for c in commands(d)]
  for pattern in PARSE_ONLY:
    assert any(re.search(pattern, c.text) for c in everything), (
        f'PARSE_ONLY entry {pattern!r} matches no documented command')


# --------------------------------------------------------------------------
# Running


def _tiny(cfg, docs_kept: list[int]) -> list[str]:
  from jaxlm import models
  family = models.family_of(cfg.model).name
  if family not in TINY:
    raise DocError(f'no TINY overrides for family {family}: add them or '
                   f'list the command in PARSE_ONLY')
  return TINY[family] + [
      f'--config.train.steps={len(docs_kept)}',
      '--config.train.checkpoint_every=1',
      f'--config.train.keep_checkpoints={len(docs_kept)}'] + [
          f'--config.data.eval.{n}.size=4' for n in cfg.data.eval]


def _run_argv(cmd: Command, state: State, tmp: Path) -> list[str]:
  """The command's jaxlm argv as it runs here: tiny settings, documented
  checkpoint steps mapped to the tiny run's, stand-ins for the reader's
  files."""
  import matplotlib.cbook
  from jaxlm import pretrained
  argv = cmd.argv[1:]
  names = [a for a in argv[1:] if a in pretrained.REGISTRY]
  if names:  # never download in a test
    raise DocError(f'{names[0]} names official weights, which running '
                   f'downloads: list the command in PARSE_ONLY')
  if argv[0] == 'train':
    run = _norm(argv[argv.index('--workdir') + 1])
    argv = argv + _tiny(state.runs[run].config, state.runs[run].kept)
  out = []
  for a in argv:
    m = re.fullmatch(r'(.+)/checkpoints/(\d+)', a)
    if m and _norm(m.group(1)) in state.runs:
      kept = state.runs[_norm(m.group(1))].kept
      a = f'{m.group(1)}/checkpoints/{kept.index(int(m.group(2))) + 1}'
    elif re.search(r'(^|/)photo\.jpg$', a):
      a = matplotlib.cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False)
    out.append(a)
  if out[0] == 'build':
    from jaxlm.cli import main
    manual = Path(_norm(out[out.index('--manual_dir') + 1]))
    assert str(manual).startswith(str(tmp)), manual
    if not manual.exists():
      assert main(['fake-data', out[1].split('/')[0], '--out', str(manual),
                   '--num', '2']) == 0
  return out


def test_documented_commands_run(tmp_path, monkeypatch, capsys):
  from jaxlm.cli import main
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setenv('JAXLM_NO_PROGRESS', '1')
  (tmp_path / 'configs').symlink_to(ROOT / 'configs')
  seen, ran, failures = {}, [], []
  readme = (State(), State())  # as documented; as run here
  for doc in DOCS:
    state, here = readme if doc == 'README.md' else copy.deepcopy(readme)
    for cmd in commands(doc):
      try:
        check(cmd, state)
        if parse_only_reason(cmd):
          continue
        argv = _run_argv(cmd, state, tmp_path)
        before = set(here.files)
        check_jaxlm(argv, here)  # the tiny command: what it must write
      except DocError as e:
        failures.append(f'{cmd.where}: `{cmd.text}`: {e}')
        continue
      key = tuple(argv)
      if argv[0] == 'build':  # one dataset built into one data dir
        key = ('build', argv[1], _norm(argv[argv.index('--data_dir') + 1]))
      if key in seen:
        continue
      seen[key] = cmd.where
      capsys.readouterr()
      code = main(argv)
      err = capsys.readouterr().err.strip().splitlines()
      ran.append(cmd.where)
      if code:
        failures.append(f'{cmd.where}: `{cmd.text}` exited {code}: '
                        f'{err[-1] if err else ""}')
        continue
      missing = [f for f in sorted(here.files - before)
                 if not (tmp_path / f).exists()]
      if missing:
        failures.append(f'{cmd.where}: `{cmd.text}` did not write '
                        f'{", ".join(missing)}')
  assert not failures, '\n'.join(failures)
  assert len(ran) >= 8, ran  # the README's walk-through at least
