"""Training augmentation of the official TUFA/SLPT code, as one affine.

Geometry (rotation, scale, shift, horizontal flip, shear) is composed into a
single 2x3 affine from the source frame (a stored crop, data/tfds) to the
model input, applied once to the image (one `cv2.warpAffine`) and once to
the landmarks, so image and points cannot drift apart. A flip also permutes
the landmarks with the layout's flip permutation. Photometric changes
(greyscale, brightness/contrast, a random occluding rectangle) act on the
warped image only.

Parameters (official values, `AugmentConfig` defaults): rotation ~ N(0, 15)
deg clipped to +-30; scale ~ N(1.2, 0.05) clipped to [1.15, 1.25] (crop side
/ face box side); shift ~ N(0, 0.05) x box side per axis, clipped to +-0.05;
flip p = 0.5; greyscale p = 0.2; brightness/contrast p = 0.5 with brightness
~ N(0, 30) clipped to +-30 and contrast ~ N(1, 0.3) clipped to [0.3, 1.3];
occlusion p = 0.5, a rectangle whose sides ~ N(0.2, 0.08) x output side,
filled with a random colour; shear p = 1/3, s ~ N(0, 0.2) clipped to +-0.2.
Off by default (the heatmap cascade's recipe sets them): gamma g ~ U(0.8,
1.2), Gaussian blur with an odd kernel of 5-19 px, Gaussian noise of std
U(10, 14.2) grey levels (Albumentations 1.x's GaussNoise(var_limit=(100,
201)); the public CD-ViT code's `GaussNoise((100/255, 201/255))` means std
100-201 grey levels under Albumentations 2.x).

Coordinates: the source frame gives the face's *reference square* (the
1.2 x box crop of the evaluation rule) by its centre and side in source
pixels; the output is `out_size` pixels; landmarks are (x, y) pixels.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from jaxlm.data import crop as crop_lib


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  rotation_std: float = 15.0
  rotation_max: float = 30.0
  scale_mean: float = 1.2
  scale_std: float = 0.05
  scale_min: float = 1.15
  scale_max: float = 1.25
  shift_std: float = 0.05
  shift_max: float = 0.05
  flip_prob: float = 0.5
  grey_prob: float = 0.2
  colour_prob: float = 0.5
  brightness_std: float = 30.0
  brightness_max: float = 30.0
  contrast_mean: float = 1.0
  contrast_std: float = 0.3
  contrast_min: float = 0.3
  contrast_max: float = 1.3
  occlusion_prob: float = 0.5
  occlusion_mean: float = 0.2
  occlusion_std: float = 0.08
  shear_prob: float = 1 / 3
  shear_std: float = 0.2
  shear_max: float = 0.2
  # Photometric extras of the heatmap cascade's recipe (CD-ViT's
  # Albumentations pipeline), off by default. Each is drawn only when its
  # probability is > 0, so configs without them keep their random stream.
  gamma_prob: float = 0.0  # RandomGamma: x -> 255 (x / 255)^g
  gamma_min: float = 0.8
  gamma_max: float = 1.2
  blur_prob: float = 0.0  # GaussianBlur: an odd kernel in [min, max]
  blur_min: int = 5
  blur_max: int = 19
  noise_prob: float = 0.0  # GaussNoise: N(0, std^2) per pixel and channel
  noise_std_min: float = 10.0  # grey levels
  noise_std_max: float = 14.2
  # The evaluation crop's side / box side that the reference square has
  # (1.2; 1.32 for COFW): scales are relative to it.
  reference_factor: float = 1.2

  @classmethod
  def off(cls, **on) -> AugmentConfig:
    """No augmentation at all (the evaluation crop), except what `on` sets."""
    none = dict(rotation_std=0.0, scale_std=0.0, shift_std=0.0, flip_prob=0.0,
                grey_prob=0.0, colour_prob=0.0, occlusion_prob=0.0,
                shear_prob=0.0)
    return cls(**{**none, **on})


def _clipped_normal(rng, mean, std, lo, hi) -> float:
  return float(np.clip(rng.normal(mean, std), lo, hi)) if std > 0 else mean


def reference_affine(centre, side: float, out_size: int) -> np.ndarray:
  """Source pixels -> output pixels mapping the reference square to the
  output (the evaluation crop)."""
  s = out_size / side
  cx, cy = centre
  return np.array([[s, 0, out_size / 2 - s * cx],
                   [0, s, out_size / 2 - s * cy]], np.float64)


def sample_geometry(rng: np.random.Generator, cfg: AugmentConfig, centre,
                    side: float, out_size: int) -> tuple[np.ndarray, bool]:
  """A random (2x3 affine source -> output pixels, flipped) pair."""
  box_side = side / cfg.reference_factor
  angle = np.deg2rad(_clipped_normal(rng, 0.0, cfg.rotation_std,
                                     -cfg.rotation_max, cfg.rotation_max))
  scale = _clipped_normal(rng, cfg.scale_mean, cfg.scale_std, cfg.scale_min,
                          cfg.scale_max)
  shift = [_clipped_normal(rng, 0.0, cfg.shift_std, -cfg.shift_max,
                           cfg.shift_max) * box_side for _ in range(2)]
  flip = bool(rng.random() < cfg.flip_prob)
  shear = 0.0
  if rng.random() < cfg.shear_prob:
    shear = _clipped_normal(rng, 0.0, cfg.shear_std, -cfg.shear_max,
                            cfg.shear_max)
  # Crop side = scale x box side, with the 1.2 of the official rule mapped
  # to this dataset's reference factor (1.32 for COFW).
  s = out_size / (side * scale / 1.2)
  c, sn = np.cos(angle), np.sin(angle)
  linear = s * np.array([[1.0, shear], [0.0, 1.0]]) @ np.array(
      [[c, sn], [-sn, c]])
  if flip:
    linear = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ linear
  src_centre = np.asarray(centre, np.float64) + shift
  offset = out_size / 2 - linear @ src_centre
  return np.concatenate([linear, offset[:, None]], axis=1), flip


def photometric(rng: np.random.Generator, cfg: AugmentConfig,
                image: np.ndarray) -> np.ndarray:
  """Greyscale, brightness/contrast and occlusion on a uint8 RGB image,
  then (when their probabilities are set) gamma, Gaussian blur and Gaussian
  noise (a new array; the input is not modified)."""
  src = image
  if rng.random() < cfg.grey_prob:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    image = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
  if rng.random() < cfg.colour_prob:
    b = _clipped_normal(rng, 0.0, cfg.brightness_std, -cfg.brightness_max,
                        cfg.brightness_max)
    a = _clipped_normal(rng, cfg.contrast_mean, cfg.contrast_std,
                        cfg.contrast_min, cfg.contrast_max)
    image = cv2.convertScaleAbs(image, alpha=a, beta=b)  # saturates to uint8
  if rng.random() < cfg.occlusion_prob:
    n = image.shape[0]
    w, h = [int(round(n * _clipped_normal(rng, cfg.occlusion_mean,
                                          cfg.occlusion_std, 0.02, 0.6)))
            for _ in range(2)]
    x, y = rng.integers(0, n - w + 1), rng.integers(0, n - h + 1)
    if image is src:
      image = image.copy()
    image[y:y + h, x:x + w] = rng.integers(0, 256, 3, dtype=np.uint8)
  if cfg.gamma_prob and rng.random() < cfg.gamma_prob:
    g = rng.uniform(cfg.gamma_min, cfg.gamma_max)
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0)**g), 0, 255)
    image = lut.astype(np.uint8)[image]
  if cfg.blur_prob and rng.random() < cfg.blur_prob:
    k = 2 * int(rng.integers(cfg.blur_min // 2, cfg.blur_max // 2 + 1)) + 1
    image = cv2.GaussianBlur(image, (k, k), 0)  # sigma from the kernel size
  if cfg.noise_prob and rng.random() < cfg.noise_prob:
    std = rng.uniform(cfg.noise_std_min, cfg.noise_std_max)
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape)
    image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
  return image


def augment(rng: np.random.Generator, cfg: AugmentConfig, image: np.ndarray,
            landmarks: np.ndarray, visible: np.ndarray, centre, side: float,
            out_size: int, flip_permutation):
  """One augmented training view: (image, landmarks, visible, affine).

  image: source uint8 RGB; landmarks (N, 2) source pixels (NaN allowed);
  centre/side: the reference square in source pixels. Returns the output
  image (out_size^2), landmarks in output pixels and visibility (both
  permuted when flipped) and the source -> output affine.
  """
  m, flipped = sample_geometry(rng, cfg, centre, side, out_size)
  out = crop_lib.warp(image, m, out_size)
  points = crop_lib.apply_affine(m, landmarks)
  visible = np.asarray(visible)
  if flipped:
    perm = np.asarray(flip_permutation)
    points, visible = points[perm], visible[perm]
  return photometric(rng, cfg, out), points, visible, m
