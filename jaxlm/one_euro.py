"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) for landmark
tracks in video.

A first-order low-pass filter whose cut-off rises with the signal's speed:
slow motion (jitter) is smoothed hard, fast motion follows with little lag.
Per coordinate, at frame rate `rate` (Hz):

  dx_t  = (x_t - x̂_{t-1}) · rate,  d̂x_t = lowpass(dx_t, d_cutoff)
  f_c   = min_cutoff + beta · |d̂x_t|
  x̂_t   = x̂_{t-1} + α(f_c) (x_t - x̂_{t-1}),  α(f) = 1 / (1 + rate / (2π f))

The first frame passes through. Units: `min_cutoff` and `d_cutoff` in Hz,
`beta` in 1 / (the signal's units), so a filter for pixels needs a beta for
pixels (scale it by 1 / face size for faces of other sizes).
"""

from __future__ import annotations

import numpy as np


def _alpha(cutoff, rate):
  return 1.0 / (1.0 + rate / (2.0 * np.pi * cutoff))


class OneEuroFilter:
  """Filters a stream of arrays of one shape (e.g. (N, 2) landmarks).

  Attributes:
    rate: frames per second.
    min_cutoff: the cut-off at rest, Hz (lower: smoother, more lag).
    beta: how fast the cut-off rises with speed.
    d_cutoff: the cut-off of the speed estimate, Hz.
  """

  def __init__(self, rate: float = 30.0, min_cutoff: float = 1.0,
               beta: float = 0.0, d_cutoff: float = 1.0):
    if not (rate > 0 and min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
      raise ValueError(f'One-Euro filter: rate, min_cutoff and d_cutoff must '
                       f'be > 0 and beta >= 0, got rate={rate}, '
                       f'min_cutoff={min_cutoff}, beta={beta}, '
                       f'd_cutoff={d_cutoff}')
    self.rate, self.min_cutoff = float(rate), float(min_cutoff)
    self.beta, self.d_cutoff = float(beta), float(d_cutoff)
    self.reset()

  def reset(self):
    self._x = self._dx = None

  def __call__(self, x) -> np.ndarray:
    """The filtered value of the next frame's `x`."""
    x = np.asarray(x, np.float64)
    if self._x is None:
      self._x, self._dx = x.copy(), np.zeros_like(x)
      return x.copy()
    if x.shape != self._x.shape:
      raise ValueError(f'One-Euro filter: frame of shape {x.shape} after '
                       f'frames of shape {self._x.shape}')
    dx = (x - self._x) * self.rate
    self._dx = self._dx + _alpha(self.d_cutoff, self.rate) * (dx - self._dx)
    cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
    self._x = self._x + _alpha(cutoff, self.rate) * (x - self._x)
    return self._x.copy()


def filter_track(frames, **kw) -> np.ndarray:
  """(T, ...) frames -> (T, ...) filtered with a fresh OneEuroFilter(**kw)."""
  f = OneEuroFilter(**kw)
  return np.stack([f(x) for x in np.asarray(frames)])
