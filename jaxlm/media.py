"""Images and videos as a stream of frames, for batch annotation.

`list_sources` expands files, folders (recursively) and glob patterns into
a sorted list of image and video files; `read_frames` yields the frames of
one source as RGB uint8 arrays with their frame index (None for an image).
A file that cannot be read raises `MediaError` naming the file (and the
frame), so a batch job can log it and go on.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from jaxlm.errors import JaxlmError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg',
                  '.mpeg')


class MediaError(JaxlmError):
  """A source (or one of its frames) that cannot be read."""

  def __init__(self, source, message: str, frame: int | None = None):
    where = f'{source}' + (f' frame {frame}' if frame is not None else '')
    super().__init__(f'{where}: {message}')
    self.source, self.frame, self.reason = str(source), frame, message


def is_video(path) -> bool:
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _is_media(path: Path) -> bool:
  return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def list_sources(inputs) -> list[str]:
  """Sorted, de-duplicated image and video files of `inputs`: files (taken
  whatever their suffix), folders (every image/video file below them) and
  glob patterns (`**` recurses). An input that names nothing is an error
  naming it."""
  found = []
  for spec in inputs:
    spec = os.path.expandvars(os.path.expanduser(str(spec)))
    path = Path(spec)
    if path.is_file():
      found.append(path)
    elif path.is_dir():
      found += [p for p in path.rglob('*') if p.is_file() and _is_media(p)]
    elif glob.has_magic(spec):
      matched = [Path(p) for p in glob.glob(spec, recursive=True)]
      files = [p for p in matched if p.is_file() and _is_media(p)]
      if not files:
        raise JaxlmError(f'{spec}: the pattern matches no image or video '
                         f'file')
      found += files
    else:
      raise JaxlmError(f'{spec}: no such file or folder')
  return sorted({str(p) for p in found})


def read_image(path) -> np.ndarray:
  """RGB uint8 image, or MediaError naming the file."""
  data = np.fromfile(str(path), np.uint8) if os.path.isfile(path) else None
  if data is None:
    raise MediaError(path, 'no such file')
  img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
  if img is None:
    raise MediaError(path, 'cannot be decoded as an image')
  return img[..., ::-1].copy()


def video_info(path) -> dict:
  """{'frames': count (OpenCV's estimate), 'fps'} of a video file."""
  cap = cv2.VideoCapture(str(path))
  try:
    if not cap.isOpened():
      raise MediaError(path, 'cannot be opened as a video')
    return dict(frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                fps=float(cap.get(cv2.CAP_PROP_FPS)) or 30.0)
  finally:
    cap.release()


def read_frames(path, every: int = 1,
                skip=frozenset()) -> Iterator[tuple[int | None, np.ndarray]]:
  """(frame index, RGB uint8 frame) of an image (index None) or of every
  `every`-th frame of a video, from frame 0. Frames whose index is in
  `skip` are read past without being decoded into RGB."""
  if every < 1:
    raise JaxlmError(f'--every {every}: must be >= 1')
  if not is_video(path):
    yield None, read_image(path)
    return
  cap = cv2.VideoCapture(str(path))
  try:
    if not cap.isOpened():
      raise MediaError(path, 'cannot be opened as a video')
    index = 0
    while True:
      if index % every or index in skip:
        ok = cap.grab()
      else:
        ok, frame = cap.read()
        if ok and frame is not None:
          yield index, frame[..., ::-1].copy()
      if not ok:
        return
      index += 1
  finally:
    cap.release()


def write_video(path, frames, fps: float) -> int:
  """Writes RGB uint8 frames (one size) to an .mp4 (MPEG-4 Part 2, which
  OpenCV's wheels encode without extra codecs) through a temporary file
  beside it, so a killed writer leaves no half-written video under `path`;
  returns the number of frames."""
  path = Path(path)
  tmp = path.with_name(f'.{path.stem}.tmp{os.getpid()}{path.suffix}')
  writer, count = None, 0
  try:
    for frame in frames:
      if writer is None:
        h, w = frame.shape[:2]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*'mp4v'),
                                 fps, (w, h))
        if not writer.isOpened():
          raise MediaError(path, 'OpenCV cannot write this video')
      writer.write(np.ascontiguousarray(frame[..., ::-1]))
      count += 1
    if writer is not None:
      writer.release()
      writer = None
      os.replace(tmp, path)
  finally:
    if writer is not None:
      writer.release()
    tmp.unlink(missing_ok=True)
  return count
