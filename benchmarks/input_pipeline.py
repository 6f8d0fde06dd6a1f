r"""Training input pipeline throughput: records/s per CPU core.

  python benchmarks/input_pipeline.py [--data_dir DIR --name wflw]
      [--faces 512] [--batch 64] [--batches 40] [--workers 0 2 4]

Runs the full training pipeline `jaxlm train` uses on pre-cropped ArrayRecord
data (JPEG decode of the 448 px stored crop + the official augmentation as
one affine + photometric changes + anchor masking + mixing + batching) and
prints records/s. "Per core" divides by the CPU seconds the process and its
workers used, so it holds however many cores the machine has. Without
--data_dir it first writes fake WFLW-format files (photos of `--photo` px)
and builds them with the TFDS builder in a temporary folder.

Target (issue 3): >= 400 records/s per core, so 16 cores feed >= 6,000 img/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np


def cpu_seconds() -> float:
  """CPU seconds of this process and its live child processes (grain's
  workers: getrusage counts children only once they have exited)."""
  me = resource.getrusage(resource.RUSAGE_SELF)
  total = me.ru_utime + me.ru_stime
  tick = os.sysconf('SC_CLK_TCK')
  for pid in os.listdir('/proc'):
    if not pid.isdigit():
      continue
    try:
      with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
      continue
    if int(fields[1]) == os.getpid():  # ppid
      total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
  return total


def build_fake(root: str, faces: int, photo: int) -> str:
  import tensorflow_datasets as tfds
  from jaxlm.data.formats import fake
  from jaxlm.data.tfds import wflw
  raw, data = os.path.join(root, 'raw'), os.path.join(root, 'tfds')
  t = time.time()
  fake.write_wflw(raw, dict(train=faces, test=2), photo_size=photo)
  b = wflw.Builder(data_dir=data)
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=raw, compute_stats=tfds.download.ComputeStatsMode.SKIP))
  print(f'built {faces} fake WFLW faces ({photo} px photos) in '
        f'{time.time() - t:.1f}s')
  return data


def run(data, name, layout, size, batch, batches, workers, threads):
  from jaxlm.data import pipeline, sources
  src = sources.TfdsFaces(name, name, 'train', layout, data, size)
  spec = sources.DatasetSpec(name, layout, src)
  it = iter(pipeline.train_dataset(
      [spec], {name: 0}, num_anchors=24, image_size=size, batch_size=batch,
      seed=0, worker_count=workers, read_threads=threads))
  next(it)  # start workers / warm caches
  c0, t0 = cpu_seconds(), time.perf_counter()
  for _ in range(batches):
    b = next(it)
  wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
  n = batches * batch
  assert b['image'].shape == (batch, size, size, 3)
  return n / wall, n / cpu


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--data_dir', help='built TFDS data (default: build fake)')
  p.add_argument('--name', default='wflw')
  p.add_argument('--layout', default='wflw98')
  p.add_argument('--faces', type=int, default=512)
  p.add_argument('--photo', type=int, default=400)
  p.add_argument('--size', type=int, default=256)
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--batches', type=int, default=40)
  p.add_argument('--threads', type=int, default=1)
  p.add_argument('--workers', type=int, nargs='+', default=[0])
  a = p.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    data = a.data_dir or build_fake(tmp, a.faces, a.photo)
    print(f'{os.cpu_count()} CPUs; image {a.size}px, batch {a.batch}, '
          f'{a.batches} batches after one warm-up batch')
    print('| workers | threads | records/s (wall) | records/s per CPU core |')
    print('|---|---|---|---|')
    for w in a.workers:
      wall, per_core = run(data, a.name, a.layout, a.size, a.batch,
                           a.batches, w, a.threads)
      print(f'| {w} | {a.threads} | {wall:.0f} | {per_core:.0f} |')
    stage_costs(data, a)


def stage_costs(data, a):
  """Per-record costs of decode and augmentation, for where the time goes."""
  import cv2
  from jaxlm import layouts
  from jaxlm.data import augment, sources
  src = sources.TfdsFaces(a.name, a.name, 'train', a.layout, data, a.size)
  recs = [src[i] for i in range(min(64, len(src)))]
  rng = np.random.default_rng(0)
  perm = layouts.get(a.layout).flip_permutation
  t = time.perf_counter()
  imgs = [sources.decode_jpeg(r['image']) for r in recs]
  t_dec = (time.perf_counter() - t) / len(recs)
  t = time.perf_counter()
  for r, im in zip(recs, imgs):
    augment.augment(rng, augment.AugmentConfig(), im, r['landmarks'],
                    r['visible'], (224, 224), 256.0, a.size, perm)
  t_aug = (time.perf_counter() - t) / len(recs)
  print(f'per record: JPEG decode {1e3 * t_dec:.2f} ms, augment '
        f'{1e3 * t_aug:.2f} ms (OpenCV threads {cv2.getNumThreads()})')


if __name__ == '__main__':
  main()
