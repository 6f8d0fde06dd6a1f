r"""Jitter on synthetic video through `jaxlm annotate`, with and without
its One-Euro smoothing, where the truth is known.

  python benchmarks/video_jitter.py --workdir workdirs/demo
  python benchmarks/video_jitter.py --workdir workdirs/demo --videos 2 \
      --frames 24 --min-cutoff 0.5 1.0 2.0 --beta 0.0 0.05

Renders `--videos` synthetic videos (`SyntheticFaces.video`: one identity
and look along a smooth pose and expression path, fixed camera) and as many
static clips (`static_copies`: one frame, independent pixel noise each
frame) at the run's input size, written losslessly (FFV1), and labels them
with the real command path (`annotate.annotate`, the whole frame as the
face crop). Per setting of the filter:

  NME     mean over frames of the inter-ocular NME (%)
  jitter  mean over frames of |e_t - e_{t-1}| / inter-ocular (% per
          frame), e = prediction - truth: the true motion removed
  static  the same on the static clips (every frame's truth is the same)
The lag the filter adds shows as NME on the moving videos.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from jaxlm import annotate, checkpoints, metrics
from jaxlm.data.synthetic import SyntheticFaces


def write_video(path: Path, frames, fps: float = 30.0):
  h, w = frames.shape[1:3]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'FFV1'), fps,
                           (w, h))
  for f in frames:
    writer.write(np.ascontiguousarray(f[..., ::-1]))
  writer.release()


def tracks(records_path: Path, key: str) -> dict:
  """{video: (T, N, 2)} of the records' `key` ('landmarks' or 'smoothed')."""
  out = {}
  for line in records_path.open():
    r = json.loads(line)
    if r.get('face') == 0:
      out.setdefault(r['source'], {})[r['frame']] = r[key]
  return {v: np.asarray([f[t] for t in sorted(f)]) for v, f in out.items()}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--workdir', required=True, help='a trained run folder')
  ap.add_argument('--layout', default='syn98')
  ap.add_argument('--videos', type=int, default=4)
  ap.add_argument('--frames', type=int, default=48)
  ap.add_argument('--min-cutoff', type=float, nargs='+',
                  default=[0.5, 1.0, 2.0])
  ap.add_argument('--beta', type=float, nargs='+', default=[0.0, 0.05])
  ap.add_argument('--seed', type=int, default=777)
  args = ap.parse_args(argv)
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger('jaxlm').setLevel(logging.WARNING)
  run = checkpoints.load_run(args.workdir)
  size = run.config.data.image_size
  faces = SyntheticFaces(args.layout, args.videos, seed=args.seed,
                         image_size=size)
  root = Path(tempfile.mkdtemp(prefix='jaxlm-jitter-'))
  (root / 'moving').mkdir()
  (root / 'static').mkdir()
  truth, norm = {}, {}
  for i in range(args.videos):
    v = faces.video(i, args.frames)
    s = faces.static_copies(i, args.frames)
    for kind, images, lm in (('moving', v['images'], v['landmarks']),
                             ('static', s['images'],
                              np.repeat(s['landmarks'][None], args.frames,
                                        0))):
      path = root / kind / f'{i:03d}.mkv'
      write_video(path, images)
      truth[str(path)] = lm
      norm[str(path)] = metrics.normaliser(lm, args.layout)
  print(f'# {args.videos} videos + {args.videos} static clips x '
        f'{args.frames} frames, {args.layout}, {size} px, run '
        f'{args.workdir} (step {run.step}); % of the inter-ocular distance\n')
  print('| filter | NME | jitter | static jitter |')
  print('|---|---|---|---|')
  settings = [None] + [dict(min_cutoff=m, beta=b, d_cutoff=1.0)
                       for m in args.min_cutoff for b in args.beta]
  for k, smooth in enumerate(settings):
    res = {}
    out = root / f'out_{k}'
    annotate.annotate(args.workdir, [root / 'moving', root / 'static'], out,
                      layout=args.layout, detector='none', smooth=smooth,
                      progress=False)
    got = tracks(out / 'landmarks.jsonl',
                 'landmarks' if smooth is None else 'smoothed')
    for kind in ('moving', 'static'):
      paths = [p for p in got if f'/{kind}/' in p]
      res[kind] = [metrics.jitter(got[p], truth[p], norm[p]) for p in paths]
      if kind == 'moving':
        res['nme'] = [np.mean(np.linalg.norm(got[p] - truth[p], axis=-1)
                              .mean(-1) / norm[p]) for p in paths]
    name = ('none (raw)' if smooth is None else
            f'One-Euro min_cutoff {smooth["min_cutoff"]:g} Hz, beta '
            f'{smooth["beta"]:g}/px')
    print(f'| {name} | {100 * np.mean(res["nme"]):.2f} | '
          f'{100 * np.mean(res["moving"]):.3f} | '
          f'{100 * np.mean(res["static"]):.3f} |', flush=True)


if __name__ == '__main__':
  main()
