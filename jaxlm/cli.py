"""The `jaxlm` command: train, eval, predict, synth, build, fake-data, convert.

Each subcommand parses its arguments and calls one library function. Errors
meant for the user (JaxlmError) print one `error: ...` line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')


def _setup_logging():
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('[jaxlm] %(message)s'))
  log.addHandler(handler)
  log.setLevel(logging.INFO)
  log.propagate = False
  logging.getLogger('absl').setLevel(logging.ERROR)
  for name in ('orbax', 'grain', 'jax._src.xla_bridge'):
    logging.getLogger(name).setLevel(logging.ERROR)


def _load(args, extra):
  from jaxlm import config as config_lib
  cfg = config_lib.load_config(args.config)
  config_lib.apply_overrides(cfg, config_lib.parse_override_args(extra))
  return config_lib.validate(cfg)


def jax_process_count() -> int:
  import jax
  return jax.process_count()


def cmd_train(args, extra):
  from jaxlm.train import distributed
  distributed.maybe_initialize()  # multi-process runs: before any device use
  from jaxlm.train.loop import train
  cfg = _load(args, extra)
  out = train(cfg, args.workdir, progress=not args.no_progress)
  stopped = out.pop('stopped')
  log.info('%s at step %d: %s', 'stopped' if stopped else 'trained',
           out['step'], ', '.join(f'{k} {v:.4g}' for k, v in out.items()
                                  if k != 'step'))
  if stopped:  # preempted: the next run resumes; evaluate then
    return
  if args.eval and jax_process_count() > 1:
    # Restoring for evaluation is collective in orbax; evaluate in a single
    # process afterwards instead of holding the other processes.
    log.info('multi-process run: evaluate with `jaxlm eval --workdir %s`',
             args.workdir)
  elif args.eval:
    args.checkpoint, args.config = None, None
    cmd_eval(args, [])


def cmd_eval(args, extra):
  from jaxlm import config as config_lib
  from jaxlm import evaluate
  from jaxlm.predict import Predictor
  target = args.checkpoint or args.workdir
  if not target:
    raise JaxlmError('eval needs --workdir DIR or --checkpoint CKPT')
  pred = Predictor(target)
  cfg = pred.config
  if args.config:  # evaluate the given config's eval datasets
    new = config_lib.load_config(args.config)
    cfg.data.eval, cfg.eval = new.data.eval, new.eval
  config_lib.apply_overrides(cfg, config_lib.parse_override_args(extra))
  out_dir = Path(args.out or Path(args.workdir or target) / 'eval')
  results = evaluate.evaluate(cfg, pred.model, pred.variables, pred.datasets,
                              out_dir, progress=not args.no_progress)
  print(evaluate.format_report(results))
  log.info('step %d; wrote %s (per-dataset JSON, ced.png, overlays, '
           'report.md)', pred.step, out_dir)


def _parse_box(text):
  try:
    box = [float(v) for v in text.split(',')]
  except ValueError:
    box = []
  if len(box) != 4:
    raise JaxlmError(f'--box {text!r}: expected x0,y0,x1,y1')
  return box


def cmd_predict(args, extra):
  del extra
  from jaxlm import plots
  from jaxlm.predict import Predictor, load_image
  target = args.checkpoint or args.workdir
  if not target:
    raise JaxlmError('predict needs --workdir DIR or --checkpoint CKPT')
  if args.crop not in ('face', 'none'):
    raise JaxlmError(f'--crop {args.crop!r}: expected "face" or "none"')
  image = load_image(args.image)
  box = _parse_box(args.box) if args.box else None
  pred = Predictor(target)
  prompts = pred.prompts(args.layout or pred.datasets[0][0])
  found = pred.detect(image, prompts, box=box, crop=args.crop == 'face')
  points = found['landmarks']
  if args.out:
    plots.save_rgb(args.out, plots.draw_landmarks(image, points))
    log.info('wrote %s', args.out)
  result = dict(image=str(args.image), num_points=len(points),
                landmarks=points.round(2).tolist(), box=box, crop=args.crop)
  if found['uncertainty'] is not None:  # DSLPT: per-landmark std, pixels
    result['uncertainty'] = found['uncertainty'].round(3).tolist()
  if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1))
    log.info('wrote %s', args.json)
  if not args.out and not args.json:
    print(json.dumps(result))


def cmd_synth(args, extra):
  del extra
  from jaxlm import plots
  from jaxlm.data.synthetic import SyntheticFaces
  ds = SyntheticFaces(args.layout, args.start + args.num, seed=args.seed,
                      image_size=args.size)
  out = Path(args.out)
  tiles = []
  for i in range(args.start, args.start + args.num):
    s = ds[i]
    tiles.append(plots.draw_landmarks(s['image'], s['landmarks'],
                                      visible=s['visible'])
                 if args.landmarks else s['image'])
  if out.suffix.lower() == '.png' and args.num > 1:
    plots.save_rgb(out, plots.tile(tiles, cols=min(args.num, 4)))
  elif out.suffix.lower() == '.png':
    plots.save_rgb(out, tiles[0])
  else:
    out.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(tiles):
      plots.save_rgb(out / f'{args.layout}_{args.start + i:05d}.png', t)
  log.info('wrote %s', out)


def cmd_build(args, extra):
  """Builds one TFDS face dataset from the user's downloaded files."""
  del extra
  import tensorflow_datasets as tfds
  from jaxlm.data import tfds as builders
  from jaxlm.data.formats import FormatError
  name, _, config = args.name.partition('/')
  if name not in builders.BUILDERS:
    raise JaxlmError(f'unknown dataset {name!r}; known: '
                     f'{", ".join(sorted(builders.BUILDERS))}')
  cls = builders.BUILDERS[name]
  configs = [c.name for c in cls.BUILDER_CONFIGS]
  if config and config not in configs:
    raise JaxlmError(f'{name} has no config {config!r}; known: '
                     f'{", ".join(configs)}')
  manual_dir = Path(args.manual_dir).expanduser()
  if not manual_dir.is_dir() or not any(manual_dir.iterdir()):
    raise JaxlmError(f'--manual_dir {manual_dir}: missing or empty. '
                     f'{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}')
  builder = cls(config=config or None, data_dir=args.data_dir,
                skip_bad=args.skip_bad)
  if builder.is_prepared() and not args.overwrite:
    log.info('%s is already built at %s (--overwrite to rebuild)',
             args.name, builder.data_path)
    return
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if args.overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  log.info('building %s/%s from %s into %s', name, builder.builder_config.name,
           manual_dir, args.data_dir)
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), download_mode=mode,
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
  except FormatError as e:
    raise JaxlmError(f'{e}; nothing was written to {args.data_dir}') from None
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  report = dict(dataset=name, config=builder.builder_config.name,
                manual_dir=str(manual_dir), data_path=str(builder.data_path),
                splits=splits,
                skipped={k: v for k, v in builder.skipped.items() if v})
  path = Path(str(builder.data_path)) / 'build_report.json'
  path.write_text(json.dumps(report, indent=2))
  n_skipped = sum(len(v) for v in builder.skipped.values())
  log.info('built %s: %s; skipped %d bad faces; report %s', args.name,
           ', '.join(f'{k} {v}' for k, v in splits.items()), n_skipped, path)


def cmd_fake_data(args, extra):
  """Writes a small fake dataset in a real dataset's original format."""
  del extra
  from jaxlm.data.formats import fake
  out, n = Path(args.out), args.num
  writers = dict(
      wflw=lambda: fake.write_wflw(out, dict(train=n, test=n)),
      w300=lambda: fake.write_300w(out, n=n),
      cofw=lambda: fake.write_cofw(out, dict(train=n, test=n)),
      merl_rav=lambda: fake.write_merlrav(out, n=n),
      aflw19=lambda: fake.write_aflw19(out, n=n),
      mafl=lambda: fake.write_mafl(out, dict(train=n, test=n)))
  if args.name not in writers:
    raise JaxlmError(f'unknown dataset {args.name!r}; known: '
                     f'{", ".join(writers)}')
  writers[args.name]()
  log.info('wrote fake %s files to %s', args.name, out)


_REPO_CONFIGS = Path(__file__).resolve().parent.parent / 'configs'


def cmd_convert(args, extra):
  """PyTorch weights -> an orbax checkpoint jaxlm trains or evaluates from."""
  from jaxlm import config as config_lib
  from jaxlm import convert
  tensors = convert.read_tensors(args.src)
  where = str(args.src)
  meta = dict(kind=args.kind, source=str(Path(args.src).absolute()),
              source_tensors=len(tensors))
  if args.kind in ('dino', 'dinov2'):
    from jaxlm.convert import dino
    tree, variant, style, lines = dino.convert_dino(
        tensors, where, args.variant,
        family='vit' if args.kind == 'dino' else 'dinov2')
    meta.update(variant=variant, key_style=style,
                num_params=convert.count(tree))
    convert.save_params(args.dst, tree, meta)
  elif args.kind == 'dinov3':
    from jaxlm.convert import dinov3
    tree, variant, style, lines = dinov3.convert_dinov3(tensors, where,
                                                        args.variant)
    meta.update(variant=variant, key_style=style,
                num_params=convert.count(tree))
    convert.save_params(args.dst, tree, meta)
  elif args.kind == 'tufa':
    from jaxlm.convert import tufa
    if not args.prompts:
      raise JaxlmError('convert tufa needs --prompts NAME=shape_N.npz[:layout]'
                       ' for each training dataset (e.g. wflw=Prompt/'
                       'shape_98.npz w300=Prompt/shape_68.npz cofw=Prompt/'
                       'shape_29.npz)')
    prompts = {}
    for spec in args.prompts:
      name, eq, rest = spec.partition('=')
      if not eq or not name:
        raise JaxlmError(f'--prompts {spec!r}: expected NAME=FILE[:layout]')
      file, _, layout = rest.partition(':')
      init, offset = tufa.read_prompt_file(file)
      layout = layout or tufa.DEFAULT_LAYOUT.get(len(init), '')
      if not layout:
        raise JaxlmError(f'--prompts {spec}: {len(init)} points; name the '
                         f'layout as {name}={file}:<layout>')
      prompts[name] = (init, offset, layout)
    cfg_path = args.config or str(_REPO_CONFIGS / 'tufa_vits16_multi.py')
    cfg = config_lib.load_config(cfg_path)
    config_lib.apply_overrides(cfg, config_lib.parse_override_args(extra))
    variables, datasets, cfg, lines = tufa.convert_tufa(tensors, prompts,
                                                        cfg, where)
    meta.update(variant=cfg.model.variant, datasets=[list(d) for d in datasets],
                prompt_files=args.prompts, config=cfg_path,
                num_params=convert.count(variables['params']))
    with convert.atomic_dir(args.dst) as tmp:
      tufa.write_run(tmp, variables, datasets, config_lib.to_json(cfg))
      convert.write_meta(tmp, meta)
  elif args.kind in ('slpt', 'dslpt'):
    from jaxlm.convert import slpt, tufa
    if not args.init:
      raise JaxlmError(f'convert {args.kind} needs --init init_N.npz (the '
                       f'official initial shape, e.g. Config/init_98.npz)')
    initial = slpt.read_initial_shape(args.init)
    default = ('slpt_hrnet_lite_wflw.py' if args.kind == 'slpt'
               else 'dslpt_hrnet_wflw.py')
    cfg_path = args.config or str(_REPO_CONFIGS / default)
    cfg = config_lib.load_config(cfg_path)
    config_lib.apply_overrides(cfg, config_lib.parse_override_args(extra))
    variables, datasets, cfg, lines = slpt.convert_slpt(
        tensors, initial, cfg, where, dataset=args.dataset or '',
        layout=args.layout or '')
    meta.update(variant=cfg.model.variant,
                datasets=[list(d) for d in datasets], init=args.init,
                config=cfg_path,
                num_params=convert.count(variables['params']))
    with convert.atomic_dir(args.dst) as tmp:
      tufa.write_run(tmp, variables, datasets, config_lib.to_json(cfg))
      convert.write_meta(tmp, meta)
  else:
    raise JaxlmError(f'convert {args.kind}: unknown kind')
  print('\n'.join(lines))  # every parameter and the source keys it came from
  log.info('converted %s (%s, %d tensors) -> %s: %s, %s parameters',
           args.src, args.kind, len(tensors), args.dst, meta.get('variant'),
           f'{meta["num_params"]:,}')


def build_parser():
  p = argparse.ArgumentParser(
      prog='jaxlm', description='Facial landmark detection in JAX (TUFA).')
  sub = p.add_subparsers(dest='command', required=True)

  t = sub.add_parser('train', help='train a config (resumes automatically)')
  t.add_argument('--config', required=True, help='configs/X.py[:arg]')
  t.add_argument('--workdir', required=True)
  t.add_argument('--eval', action='store_true',
                 help='evaluate the final checkpoint afterwards')
  t.add_argument('--out', default=None, help=argparse.SUPPRESS)
  t.set_defaults(fn=cmd_train)

  e = sub.add_parser('eval', help='evaluate a checkpoint')
  e.add_argument('--workdir')
  e.add_argument('--checkpoint')
  e.add_argument('--config', help='take eval datasets from this config')
  e.add_argument('--out', help='output dir (default WORKDIR/eval)')
  e.set_defaults(fn=cmd_eval)

  r = sub.add_parser('predict', help='landmarks of one image')
  r.add_argument('--workdir')
  r.add_argument('--checkpoint')
  r.add_argument('--image', required=True)
  r.add_argument('--box', help='x0,y0,x1,y1 face box in image pixels')
  r.add_argument('--crop', default='face', help='"face" (default) or "none"')
  r.add_argument('--layout', help='training dataset/layout, or prompts.npy')
  r.add_argument('--out', help='overlay PNG')
  r.add_argument('--json', help='landmarks JSON')
  r.set_defaults(fn=cmd_predict)

  s = sub.add_parser('synth', help='render synthetic faces')
  s.add_argument('--layout', default='syn98')
  s.add_argument('--num', type=int, default=16)
  s.add_argument('--start', type=int, default=0)
  s.add_argument('--seed', type=int, default=0)
  s.add_argument('--size', type=int, default=256, help='image side (pixels)')
  s.add_argument('--landmarks', action='store_true')
  s.add_argument('--out', required=True, help='a .png (grid) or a folder')
  s.set_defaults(fn=cmd_synth)

  b = sub.add_parser('build', help='build a TFDS dataset from downloaded '
                     'files (once)')
  b.add_argument('name', help='wflw | w300[/private|/masked] | cofw[/cofw68]'
                 ' | merl_rav | aflw19 | mafl')
  b.add_argument('--manual_dir', required=True,
                 help='the downloaded files (see the builder instructions)')
  b.add_argument('--data_dir', required=True,
                 help='TFDS data dir to write (local or gs://)')
  b.add_argument('--skip_bad', action='store_true',
                 help='skip bad faces, list them in build_report.json')
  b.add_argument('--overwrite', action='store_true')
  b.set_defaults(fn=cmd_build)

  f = sub.add_parser('fake-data', help='write a small fake dataset in a real '
                     "dataset's original file format (for smoke tests)")
  f.add_argument('name', help='wflw | w300 | cofw | merl_rav | aflw19 | mafl')
  f.add_argument('--out', required=True)
  f.add_argument('--num', type=int, default=4, help='faces per split/folder')
  f.set_defaults(fn=cmd_fake_data)

  c = sub.add_parser('convert', help='PyTorch weights (.pth/.safetensors) '
                     '-> orbax checkpoint')
  c.add_argument('kind', choices=['dino', 'dinov2', 'dinov3', 'tufa', 'slpt',
                                  'dslpt'])
  c.add_argument('--src', required=True, help='.pth/.pt/.bin/.safetensors')
  c.add_argument('--dst', required=True, help='output folder (new or empty)')
  c.add_argument('--variant', help='expected ViT variant, e.g. S/16 '
                 '(checked against the file)')
  c.add_argument('--prompts', nargs='+', help='tufa: NAME=shape_N.npz'
                 '[:layout] per training dataset')
  c.add_argument('--config', help='tufa/slpt/dslpt: config whose model/eval '
                 'settings the run uses (default configs/tufa_vits16_multi.py,'
                 ' slpt_hrnet_lite_wflw.py, dslpt_hrnet_wflw.py)')
  c.add_argument('--init', help='slpt/dslpt: the official initial shape '
                 'init_N.npz')
  c.add_argument('--dataset', help='slpt/dslpt: training dataset name '
                 '(default: the config\'s)')
  c.add_argument('--layout', help='slpt/dslpt: landmark layout (default: the '
                 'config\'s, or by the number of points)')
  c.set_defaults(fn=cmd_convert)

  for sp in (t, e, r, s, b, f, c):
    sp.add_argument('--no-progress', action='store_true',
                    default=bool(os.environ.get('JAXLM_NO_PROGRESS')))
  return p


def main(argv=None):
  _setup_logging()
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra and args.command not in ('train', 'eval', 'convert'):
    parser.error(f'unrecognised arguments: {" ".join(extra)}')
  try:
    args.fn(args, extra)
  except JaxlmError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    return 130
  return 0


if __name__ == '__main__':
  sys.exit(main())
