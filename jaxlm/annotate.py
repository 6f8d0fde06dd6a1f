"""`jaxlm annotate`: landmarks of every face in images, folders, globs and
videos, in batches, resumable.

The pipeline, one direction:

  sources (`media.list_sources`; each process takes every P-th file)
    -> frames (a reader thread: images, or every `every`-th video frame)
    -> faces and crops (a thread pool: decode, detect, crop by the official
       rule; OpenCV releases the GIL)
    -> fixed-size batches of crops through one jitted call, data-parallel
       over the process's devices (`Predictor.predict_crops`)
    -> image pixels -> face tracks and One-Euro smoothing (videos)
    -> one JSON line per face in OUT/landmarks.jsonl, in source order.

Output folder OUT:
  landmarks.jsonl  one record per face: source, frame (None for an image),
                   face (index in the frame, largest first), box (x0, y0,
                   x1, y1 image pixels), score (the detector's; None for a
                   given box or a whole-image crop), landmarks (N x [x, y]
                   image pixels), uncertainty (families with one), what the
                   family describes (e.g. head pose), and for videos track
                   (id) and smoothed (with --smooth). A frame with no face
                   gives one record with face None and error 'no face
                   found'; an unreadable file or frame gives one with its
                   error, also listed in errors.jsonl.
  errors.jsonl     the files and frames that could not be read.
  annotate.json    the settings; a restart with other settings is refused.
  overlays/        with overlays=True, each image with its landmarks
                   (<flat path>.png) and each video with them, smoothed
                   where they were (<flat path>.mp4, every `every`-th frame,
                   written once the video's records are all in).
  landmarks.csv, landmarks.parquet
                   with tables=('csv', 'parquet'), the records as a table
                   (`landmark_tables`), rewritten at the end of each run.

Resuming: the records of a frame are written together, in one write, once
all its faces are predicted; a killed job leaves at most a torn last line,
which the restart removes. The same command then skips every frame already
recorded (a video's tracks and filters are replayed from its records) and
loses nothing. Under `jax.distributed` each process writes its own
landmarks-<i>-of-<P>.jsonl.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Iterator

import jax
import numpy as np

from jaxlm import inference, landmark_tables, media, plots
from jaxlm.data import crop as crop_lib
from jaxlm.errors import JaxlmError
from jaxlm.face_tracks import FaceTracks
from jaxlm.inference import Face, Predictor, add_description, detect_faces

log = logging.getLogger('jaxlm')

SETTINGS = 'annotate.json'
DETECTORS = inference.DETECTORS + ('none',)
# Settings that change what a record says: a restart must repeat them.
_RESULT_SETTINGS = ('checkpoint', 'step', 'layout', 'detector', 'boxes',
                    'max_faces', 'every', 'smooth', 'on_device')


@dataclasses.dataclass
class _Frame:
  """One image or video frame on its way through the pipeline."""
  source: str
  frame: int | None
  image: np.ndarray | None = None
  error: str | None = None
  faces: list = dataclasses.field(default_factory=list)  # Face
  crops: list = dataclasses.field(default_factory=list)
  affines: list = dataclasses.field(default_factory=list)
  results: list = dataclasses.field(default_factory=list)  # per face
  fps: float = 30.0
  on_device: bool = False  # waits for detection on the device

  @property
  def complete(self) -> bool:
    return not self.on_device and len(self.results) == len(self.crops) and all(
        r is not None for r in self.results)


def _key(source: str, frame) -> str:
  return source if frame is None else f'{source}#{frame}'


def read_boxes(path) -> dict:
  """A boxes file: JSON {source (or 'video#frame'): [[x0, y0, x1, y1],
  ...]}, sources as paths (matched after making them absolute)."""
  try:
    data = json.loads(Path(path).read_text())
  except (OSError, ValueError) as e:
    raise JaxlmError(f'--boxes {path}: cannot read it as JSON: {e}') from None
  if not isinstance(data, dict):
    raise JaxlmError(f'--boxes {path}: expected an object {{source: [[x0, '
                     f'y0, x1, y1], ...]}}')
  out = {}
  for key, boxes in data.items():
    b = np.asarray(boxes, np.float64)
    if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
      raise JaxlmError(f'--boxes {path}: {key!r} needs a list of finite '
                       f'[x0, y0, x1, y1] boxes, got {boxes!r}'[:300])
    src, sep, frame = key.rpartition('#')
    key = (_key(os.path.abspath(src), int(frame))
           if sep and frame.isdigit() else os.path.abspath(key))
    out[key] = [tuple(r) for r in b]
  return out


def _shard(sources: list[str]) -> tuple[list[str], str]:
  """This process's share of the sources and its records-file suffix."""
  i, n = jax.process_index(), jax.process_count()
  return sources[i::n], ('' if n == 1 else f'-{i:05d}-of-{n:05d}')


def _read_records(path: Path):
  """Frames already recorded in `path` ({'source#frame' keys}) and each
  video's face records in frame order (to replay its tracks). A torn last
  line (a killed writer) is cut off the file."""
  done, videos = set(), collections.defaultdict(dict)
  if not path.exists():
    return done, videos
  data = path.read_bytes()
  end = data.rfind(b'\n') + 1
  if end < len(data):
    log.warning('%s: removing a torn last line (%d bytes) left by an '
                'interrupted run', path, len(data) - end)
    with open(path, 'r+b') as f:
      f.truncate(end)
  for n, line in enumerate(data[:end].splitlines(), 1):
    try:
      rec = json.loads(line)
      key = _key(rec['source'], rec['frame'])
    except (ValueError, KeyError, TypeError) as e:
      raise JaxlmError(f'{path}:{n}: not a jaxlm annotate record ({e}); '
                       f'write to another --out') from None
    done.add(key)
    if rec['frame'] is not None:  # empty frames too: they age the tracks
      faces = videos[rec['source']].setdefault(rec['frame'], [])
      if rec.get('face') is not None:
        faces.append(rec)
  return done, videos


def _check_settings(out: Path, settings: dict):
  """Writes OUT/annotate.json, or refuses a restart whose settings differ
  from the recorded ones (naming them)."""
  path = out / SETTINGS
  if path.exists():
    try:
      old = json.loads(path.read_text())
    except ValueError as e:
      raise JaxlmError(f'{path} is not valid JSON ({e}); write to another '
                       f'--out') from None
    changed = [k for k in _RESULT_SETTINGS if old.get(k) != settings.get(k)]
    if changed:
      raise JaxlmError(
          f'{out} holds annotations made with other settings ('
          + '; '.join(f'{k}: {old.get(k)!r} then, {settings.get(k)!r} now'
                      for k in changed)
          + '); repeat them to resume, or write to another --out')
    return
  tmp = path.with_suffix(f'.tmp{os.getpid()}')
  tmp.write_text(json.dumps(settings, indent=1))
  os.replace(tmp, path)


def _prefetch(iterator, size: int) -> Iterator:
  """`iterator`'s items, produced ahead by a background thread (at most
  `size` waiting); its exception is raised here."""
  q = queue.Queue(size)
  end = object()
  stop = threading.Event()

  def run():
    try:
      for item in iterator:
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
      q.put(end)
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)

  thread = threading.Thread(target=run, daemon=True, name='jaxlm-frames')
  thread.start()
  try:
    while True:
      item = q.get()
      if item is end:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()


def _ordered_map(pool, fn, items, window: int) -> Iterator:
  """fn(item) for each item, run in `pool` with at most `window` in
  flight, yielded in input order."""
  pending = collections.deque()
  for item in items:
    pending.append(pool.submit(fn, item))
    if len(pending) >= window:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()


class Annotator:
  """The batch pipeline of `annotate` (see the module docstring)."""

  def __init__(self, predictor: Predictor, prompts, *, detector='haar',
               boxes: dict | None = None, max_faces: int = 0,
               smooth: dict | None = None, layout=None):
    if detector not in DETECTORS:
      raise JaxlmError(f'--detector {detector!r}: expected one of '
                       f'{", ".join(DETECTORS)}')
    self.predictor, self.prompts = predictor, prompts
    self.detector, self.boxes, self.max_faces = detector, boxes, max_faces
    self.smooth, self.layout = smooth, layout
    self.size = predictor.size

  def frames(self, sources, every: int, done: set) -> Iterator[_Frame]:
    """Frames not yet recorded, in source order; images undecoded (their
    reading is the pool's work), videos decoded here."""
    for source in sources:
      if not media.is_video(source):
        if source not in done:
          yield _Frame(source, None)
        continue
      skip = {int(k.rpartition('#')[2]) for k in done
              if k.startswith(source + '#')}
      try:
        fps = media.video_info(source)['fps'] / every
        for index, image in media.read_frames(source, every, skip):
          yield _Frame(source, index, image, fps=fps)
      except media.MediaError as e:
        if _key(source, None) not in done:
          yield _Frame(source, None, error=e.reason)

  def prepare(self, f: _Frame) -> _Frame:
    """Reads (images), finds the faces and crops them (pool threads)."""
    if f.error is not None:
      return f
    try:
      if f.image is None:
        f.image = media.read_image(f.source)
    except media.MediaError as e:
      f.error = e.reason
      return f
    h, w = f.image.shape[:2]
    key = _key(os.path.abspath(f.source), f.frame)
    if self.boxes is not None:
      f.faces = [Face(b, None) for b in self.boxes.get(key, [])]
    elif self.detector != 'none':
      f.faces = detect_faces(f.image, self.max_faces, detector=self.detector)
    else:  # the whole image is the face crop
      f.faces = [Face((0.0, 0.0, float(w), float(h)), None)]
    for face in f.faces:
      if self.detector == 'none' and self.boxes is None:
        m = np.array([[self.size / w, 0, 0], [0, self.size / h, 0]])
      else:
        m = crop_lib.square_crop_affine(face.box, self.size)
      f.crops.append(crop_lib.warp(f.image, m, self.size))
      f.affines.append(m)
    f.results = [None] * len(f.crops)
    return f

  def read(self, f: _Frame) -> _Frame:
    """Reads an image (pool threads); its faces are found on the device
    (`predict_frames`)."""
    if f.error is None and f.image is None:
      try:
        f.image = media.read_image(f.source)
      except media.MediaError as e:
        f.error = e.reason
    f.on_device = f.error is None
    return f

  def predict_frames(self, frames: list[_Frame]):
    """Frames of one size through `Predictor.faces`: detection, crops and
    landmarks in one jitted call; the `max_faces` (0: 8) largest faces,
    largest first, as on the host."""
    out = self.predictor.faces(np.stack([f.image for f in frames]),
                               self.layout, detector=self.detector,
                               max_faces=self.max_faces or 8)
    for i, f in enumerate(frames):
      slots = np.flatnonzero(out['scores'][i] > 0)  # largest first
      f.faces = [Face(tuple(float(v) for v in out['boxes'][i, j]),
                      float(out['scores'][i, j])) for j in slots]
      unc = out['uncertainty']
      f.results = [dict(landmarks=out['points'][i, j],
                        uncertainty=None if unc is None else unc[i, j],
                        described=out['described'][i][j]) for j in slots]
      f.crops = [None] * len(slots)
      f.on_device = False

  def predict(self, items: list[tuple[_Frame, int]]):
    """One batch of (frame, face index) through the model."""
    crops = np.stack([f.crops[j] for f, j in items])
    pred, std, described = self.predictor.predict_crops(crops, self.prompts)
    for k, (f, j) in enumerate(items):
      one = jax.tree_util.tree_map(lambda a, k=k: a[k], described)
      f.results[j] = self.predictor.to_image(
          pred[k], None if std is None else std[k], one, f.affines[j])
      f.crops[j] = None  # free the crop


def _records(f: _Frame, family_name: str, tracks: FaceTracks | None) -> list:
  """The JSON records of one finished frame."""
  if f.error is not None or not f.faces:
    if tracks is not None:  # an empty frame counts towards the tracks' gaps
      tracks.update([], [])
    return [dict(source=f.source, frame=f.frame, face=None,
                 error=f.error or 'no face found')]
  boxes = [[round(float(v), 2) for v in face.box] for face in f.faces]
  points = [np.round(np.asarray(r['landmarks'], np.float64), 2)
            for r in f.results]
  ids = smoothed = None
  if tracks is not None:  # the rounded values, as a resumed run replays them
    ids, smoothed = tracks.update(boxes, points)
  out = []
  for j, (face, r) in enumerate(zip(f.faces, f.results)):
    rec = dict(source=f.source, frame=f.frame, face=j, box=boxes[j],
               score=None if face.score is None else round(face.score, 4),
               landmarks=points[j].tolist())
    if r['uncertainty'] is not None:
      rec['uncertainty'] = np.round(np.asarray(r['uncertainty'], np.float64),
                                    3).tolist()
    add_description(rec, r['described'], family_name)
    if ids is not None:
      rec['track'] = ids[j]
      if smoothed[j] is not None:
        rec['smoothed'] = np.round(smoothed[j], 2).tolist()
    out.append(rec)
  return out


def _overlay_name(source: str, kind: str = '.png') -> str:
  """A flat file name for a source's overlay: its absolute path with '__'
  for the separators and '_' for the suffix's dot (a/b.jpg ->
  a__b_jpg.png)."""
  path = os.path.splitdrive(os.path.abspath(source))[1].strip(os.sep)
  stem, suffix = os.path.splitext(path)
  return stem.replace(os.sep, '__') + suffix.replace('.', '_') + kind


def _draw_records(image, recs: list, scheme, min_size: int = 0):
  """The image with each face record's landmarks (smoothed where they
  were) and box drawn."""
  img, s = plots.enlarge(image, min_size)
  for r in recs:
    if r.get('face') is None:
      continue
    pts = r['smoothed'] if r.get('smoothed') is not None else r['landmarks']
    img = plots.draw_landmarks(img, np.asarray(pts) * s, layout=scheme,
                               box=np.asarray(r['box']) * s)
  return img


def _video_overlays(videos: list[str], records_path: Path, out: Path,
                    every: int, scheme) -> int:
  """OUT/overlays/<flat path>.mp4 of each video not drawn yet, from its
  records; returns how many were written."""
  todo = [v for v in videos
          if not (out / 'overlays' / _overlay_name(v, '.mp4')).exists()]
  if not todo:
    return 0
  by_frame = collections.defaultdict(list)
  for r in landmark_tables.read_records(records_path):
    if r['frame'] is not None and r['source'] in todo:
      by_frame[r['source'], r['frame']].append(r)
  written = 0
  for video in todo:
    try:
      fps = media.video_info(video)['fps'] / every
      frames = (_draw_records(img, by_frame.get((video, i), []), scheme)
                for i, img in media.read_frames(video, every))
      n = media.write_video(out / 'overlays' / _overlay_name(video, '.mp4'),
                            frames, fps)
    except media.MediaError as e:
      log.warning('overlay of %s not written: %s', video, e)
      continue
    written += n > 0
  return written


def annotate(checkpoint, inputs, out, *, layout=None, detector='haar',
             boxes=None, max_faces: int = 0, every: int = 1,
             batch_size: int = 32, threads: int = 4, smooth: dict | None = None,
             overlays: bool = False, tables=(), on_device: bool = False,
             progress: bool = True) -> dict:
  """Landmarks of every face in `inputs`, written to folder `out`.

  Args:
    checkpoint: a run folder or one of its step folders.
    inputs: image and video files, folders (recursive) and glob patterns.
    out: the output folder (see the module docstring); an existing one is
      resumed.
    layout: a training dataset or layout name (default: the first training
      dataset), a prompts `.npy`, or a layout with a 3D query table.
    detector: 'haar' (OpenCV's frontal-face cascade, every face),
      'blazeface' (MediaPipe BlazeFace full range: turned and small faces
      too), 'blazeface-short', 'blazeface-back' (`inference.detect_faces`)
      or 'none' (the whole image is the model input).
    boxes: a JSON file of face boxes per source (`read_boxes`), used
      instead of the detector.
    max_faces: at most this many faces per frame, largest first (0: all).
    every: every N-th video frame.
    batch_size: faces per jitted call (rounded up to the device count).
    threads: reader/detector threads.
    smooth: One-Euro settings for video tracks (min_cutoff, beta, d_cutoff;
      the rate is the video's frame rate / every), or None.
    overlays: write OUT/overlays/<flat path>.png for images, .mp4 for
      videos.
    tables: also write the records as OUT/landmarks.csv and/or
      OUT/landmarks.parquet ('csv', 'parquet').
    on_device: BlazeFace detection and the crops inside the model's jitted
      call (`Predictor.faces`), batch_size frames per call (of one size:
      a batch ends where the size changes), max_faces (default 8) slots
      per frame; the host only decodes. Crops differ from the host path's
      by a grey level or so.

  Returns:
    {'frames': frames recorded now, 'faces', 'no_face', 'errors',
    'skipped': frames recorded before, 'records': the records file}.
  """
  if every < 1 or max_faces < 0 or threads < 1:
    raise JaxlmError('--every and --threads must be >= 1, --max-faces >= 0')
  tables = landmark_tables.check_formats(tables)
  if on_device and (boxes or detector in ('haar', 'none')):
    raise JaxlmError('--on-device detects with BlazeFace on the device: '
                     'use --detector blazeface[-short|-back], without '
                     '--boxes')
  sources = media.list_sources(inputs)
  if not sources:
    raise JaxlmError(f'no image or video files in {" ".join(map(str, inputs))}')
  out = Path(os.path.expanduser(str(out)))
  predictor = Predictor(checkpoint, batch_size=batch_size)
  chosen = layout if layout is not None else predictor.datasets[0][0]
  prompts = predictor.layout_prompts(chosen)
  if layout is None:
    log.info('layout: %s (the first training dataset; --layout picks '
             'another)', chosen)
  box_table = read_boxes(boxes) if boxes else None
  settings = dict(checkpoint=str(Path(checkpoint).expanduser().absolute()),
                  step=predictor.step, layout=str(chosen),
                  detector=detector if boxes is None else 'boxes',
                  boxes=None if boxes is None else str(Path(boxes).absolute()),
                  max_faces=max_faces, every=every, smooth=smooth,
                  family=predictor.family.name, num_points=len(prompts))
  if on_device:  # recorded only when set: older folders still resume
    settings['on_device'] = True
  try:
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
  except OSError as e:
    raise JaxlmError(f'cannot write to {out}: {e.strerror or e}') from None
  share, suffix = _shard(sources)
  records_path = out / f'landmarks{suffix}.jsonl'
  errors_path = out / f'errors{suffix}.jsonl'
  done, history = _read_records(records_path)
  annotator = Annotator(predictor, prompts, detector=detector,
                        boxes=box_table, max_faces=max_faces, smooth=smooth,
                        layout=chosen)
  tracks = {}  # video -> FaceTracks, replayed from its earlier records

  def tracks_of(f: _Frame):
    if f.frame is None:
      return None
    if f.source not in tracks:
      t = FaceTracks(smooth=None if smooth is None else dict(rate=f.fps,
                                                             **smooth))
      for _, recs in sorted(history.pop(f.source, {}).items()):
        t.update([r['box'] for r in recs],
                 [np.asarray(r['landmarks']) for r in recs])
      tracks[f.source] = t
    return tracks[f.source]

  counts = collections.Counter()
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(desc='annotate', unit='frame', dynamic_ncols=True)
  if overlays:
    (out / 'overlays').mkdir(exist_ok=True)
  pending = collections.deque()  # frames in order, awaiting predictions
  waiting = []  # (frame, face index) not yet predicted
  family_name = predictor.family.name
  scheme = predictor.layout_name(chosen)  # the overlays' contours

  with open(records_path, 'a', encoding='utf-8') as rec_file, \
       open(errors_path, 'a', encoding='utf-8') as err_file, \
       concurrent.futures.ThreadPoolExecutor(threads) as pool:

    def flush():
      while pending and pending[0].complete:
        f = pending.popleft()
        recs = _records(f, family_name, tracks_of(f))
        rec_file.write(''.join(json.dumps(r) + '\n' for r in recs))
        rec_file.flush()
        if f.error is not None:
          err_file.write(json.dumps(dict(source=f.source, frame=f.frame,
                                         error=f.error)) + '\n')
          err_file.flush()
          log.warning('%s: %s (skipped)', _key(f.source, f.frame), f.error)
          counts['errors'] += 1
        elif not f.faces:
          counts['no_face'] += 1
        if overlays and f.frame is None and f.faces and f.error is None:
          plots.save_rgb(out / 'overlays' / _overlay_name(f.source),
                         _draw_records(f.image, recs, scheme, 256))
        counts['frames'] += 1
        counts['faces'] += len(f.faces) if f.error is None else 0
        f.image = None
        if bar is not None:
          bar.update()
          bar.set_postfix(faces=counts['faces'], errors=counts['errors'],
                          refresh=False)

    frames = _prefetch(annotator.frames(share, every, done), 4 * threads)
    if on_device:  # waiting: frames of one size
      shapes = set()
      for f in _ordered_map(pool, annotator.read, frames, 4 * threads):
        pending.append(f)
        if f.on_device:
          if f.image.shape not in shapes and len(shapes) == 3:
            log.warning('--on-device: a 4th frame size; each size compiles '
                        'apart: it is meant for frames of one size (videos)')
          shapes.add(f.image.shape)
          if waiting and waiting[0].image.shape != f.image.shape:
            annotator.predict_frames(waiting)
            waiting = []
          waiting.append(f)
        if len(waiting) >= predictor.batch_size:
          annotator.predict_frames(waiting)
          waiting = []
        flush()
      if waiting:
        annotator.predict_frames(waiting)
      flush()
    else:  # waiting: (frame, face index) of the crops
      for f in _ordered_map(pool, annotator.prepare, frames, 4 * threads):
        pending.append(f)
        waiting += [(f, j) for j in range(len(f.crops))]
        while len(waiting) >= predictor.batch_size:
          annotator.predict(waiting[:predictor.batch_size])
          waiting = waiting[predictor.batch_size:]
        flush()
      if waiting:
        annotator.predict(waiting)
      flush()
  if bar is not None:
    bar.close()
  if overlays:
    _video_overlays([v for v in share if media.is_video(v)], records_path,
                    out, every, scheme)
  if tables:
    for path in landmark_tables.write_tables(records_path, tables):
      log.info('table: %s', path)
  summary = dict(frames=counts['frames'], faces=counts['faces'],
                 no_face=counts['no_face'], errors=counts['errors'],
                 skipped=len(done), records=str(records_path))
  log.info('annotated %d frames (%d faces, %d without a face, %d errors; '
           '%d recorded before) -> %s', summary['frames'], summary['faces'],
           summary['no_face'], summary['errors'], summary['skipped'],
           records_path)
  return summary
