"""BlazeFace face detectors (Bazarevsky et al., "BlazeFace: Sub-millisecond
Neural Face Detection on Mobile GPUs", CVPR-W 2019) as MediaPipe ships them.

Built from what MediaPipe's TFLite graphs contain (read with
`convert.tflite_files.read_tflite`; every layer below is one TFLite op):

  'short' (face_detection_short_range.tflite, 128x128 input, 896 anchors)
  and 'back' (face_detection_back.tflite, 256x256, 896 anchors): the paper's
  single BlazeBlocks (§2, Fig. 1):
    stem: 5x5 conv stride 2 + ReLU
    -> `BlazeBlock`s (`BLOCKS[variant]`: output channels, stride)
    -> ['back' only: `final`, a 3x3 depthwise stride 2 + 1x1 conv + ReLU
        without a residual]
    -> two SSD heads (1x1 convs): on the 16x16 map after block `HEADS[variant]`
       (2 anchors per cell) and on the final 8x8 map (6 anchors per cell).
  'full' (face_detection_full_range.tflite, 192x192, 2304 anchors): not in
  the paper; double BlazeBlocks (§2, Fig. 1 right) and a feature pyramid:
    stem: 3x3 conv stride 2 + ReLU (96x96x32)
    -> `DoubleBlazeBlock`s (`DOUBLE_BLOCKS`: middle channels, output
       channels, stride) taking feature maps at 48, 24, 12 and 6 cells
    -> three top-down steps (`FPN`): `top` 1x1 conv + ReLU of the coarser
       map, bilinear 2x upsampling (half-pixel centres, as the graph's
       RESIZE_BILINEAR), + `lateral` 1x1 conv + ReLU of the backbone map,
       then double blocks -> 12, 24, 48 cells
    -> one SSD head on the 48x48 map (1 anchor per cell).

BlazeBlock: 3x3 depthwise conv (stride s, TF 'SAME' padding) -> 1x1 conv to
C_out; the skip path is the input, 2x2 max-pooled when s == 2 and zero-padded
to C_out channels at the end (TFLite PAD on the channel axis); sum, ReLU.
DoubleBlazeBlock: depthwise (stride s) -> 1x1 to C_mid -> ReLU -> depthwise
-> 1x1 to C_out, the same skip, sum, ReLU. No batch norm (folded into the
convolutions' biases in the TFLite files).

Input: (B, S, S, 3) RGB in [0, 255] (uint8 or float), S = `INPUT_SIZE`;
scaled to [-1, 1] inside (x / 127.5 - 1, MediaPipe's ImageToTensor range).
Output: (regressors (B, N, 16), logits (B, N)) per anchor in MediaPipe's
anchor order (row-major over cells, anchors of a cell contiguous, the finer
map first): regressors are x_c, y_c, w, h, then 6 keypoints (x, y), all in
input pixels relative to the anchor centre (`detection_decode.py` turns them
into boxes); logits are the raw face scores (sigmoid in decoding).

Parameter names: `stem`, `block_{i}` (`depthwise`, `project`; double blocks
`depthwise_1`, `project_1`, `depthwise_2`, `project_2`), `final`, `fpn_{l}`
(`top`, `lateral`, `block_{k}`), `classifier_{h}`, `regressor_{h}`.
`layer_order(variant)` lists the convolutions in the TFLite graph's
execution order; the converter (`convert/blazeface.py`) pairs it with the
graph's CONV_2D / DEPTHWISE_CONV_2D ops one by one.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

VARIANTS = ('short', 'full', 'back')
INPUT_SIZE = {'short': 128, 'full': 192, 'back': 256}
NUM_ANCHORS = {'short': 896, 'full': 2304, 'back': 896}
STEM = {'short': (24, 5), 'back': (24, 5), 'full': (32, 3)}  # (C, kernel)
# Single BlazeBlocks: (output channels, stride).
BLOCKS = {
    'short': ((24, 1), (28, 1), (32, 2), (36, 1), (42, 1), (48, 2), (56, 1),
              (64, 1), (72, 1), (80, 1), (88, 1), (96, 2), (96, 1), (96, 1),
              (96, 1), (96, 1)),
    'back': ((24, 1),) * 7 + ((24, 2),) + ((24, 1),) * 7 + ((48, 2),)
            + ((48, 1),) * 7 + ((96, 2),) + ((96, 1),) * 7,
}
# Index of the block whose output feeds the 2-anchor head (16x16 cells).
HEADS = {'short': 10, 'back': 30}
# Anchors per cell of each head's map (finer map first).
HEAD_ANCHORS = {'short': (2, 6), 'back': (2, 6), 'full': (1,)}
# 'full': double BlazeBlocks (middle channels, output channels, stride);
# the maps after blocks 4, 7, 10, 14 feed the pyramid (48, 24, 12, 6 cells).
DOUBLE_BLOCKS = ((8, 32, 1), (8, 32, 1), (12, 48, 2), (12, 48, 1),
                 (16, 64, 1), (24, 96, 2), (32, 128, 1), (32, 128, 1),
                 (36, 144, 2), (48, 192, 1), (64, 256, 1), (96, 384, 2),
                 (96, 384, 1), (96, 384, 1), (96, 384, 1))
PYRAMID_TAPS = (4, 7, 10, 14)
# Top-down steps: (channels, middle channels, number of double blocks).
FPN = ((96, 48, 2), (64, 32, 2), (48, 24, 1))


def normalize(images):
  """RGB [0, 255] -> [-1, 1] float32 (MediaPipe's output_tensor_float_range)."""
  return jnp.asarray(images, jnp.float32) / 127.5 - 1.0


def _conv(features, kernel=1, stride=1, name=None):
  # 1x1 convs are VALID in the graph, k x k ones SAME: identical for 1x1.
  return nn.Conv(features, (kernel, kernel), strides=stride, padding='SAME',
                 name=name)


class DepthwiseConv(nn.Module):
  """3x3 depthwise convolution with bias, TF 'SAME' padding (the extra row /
  column of an odd total at the bottom / right): (B, H, W, C) ->
  (B, ceil(H / s), ceil(W / s), C). Parameters as flax's depthwise
  `nn.Conv`: kernel (3, 3, 1, C), bias (C,).

  Written as nine shifted multiply-adds, not `lax.conv_general_dilated`
  with feature_group_count: jaxlib 0.10.2's CPU compiler miscompiles the
  chain of grouped convolutions of the short-range network under `jax.jit`
  (regressors off by up to 44 against op-by-op execution and the TFLite
  interpreter; the full-range and back networks were unaffected). The
  shifted sum is exact on every backend and XLA fuses it into one loop.
  """
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, 1, self.channels))
    bias = self.param('bias', nn.initializers.zeros, (self.channels,))
    s = self.stride
    _, h, w, _ = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + 3 - h, 0), max((ow - 1) * s + 3 - w, 0)
    x = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2),
                    (0, 0)))
    out = bias
    for i in range(3):
      for j in range(3):
        out = out + x[:, i:i + (oh - 1) * s + 1:s,
                      j:j + (ow - 1) * s + 1:s] * kernel[i, j, 0]
    return out


def _depthwise(channels, stride, name):
  return DepthwiseConv(channels, stride, name=name)


def _skip(x, features, stride):
  """The residual path: 2x2 max pool when strided, zero channels appended."""
  if stride == 2:
    x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')
  extra = features - x.shape[-1]
  if extra:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
  return x


class BlazeBlock(nn.Module):
  """Single BlazeBlock: (B, H, W, C_in) -> (B, H / s, W / s, features)."""
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    y = _depthwise(x.shape[-1], self.stride, 'depthwise')(x)
    y = _conv(self.features, name='project')(y)
    return nn.relu(y + _skip(x, self.features, self.stride))


class DoubleBlazeBlock(nn.Module):
  """Double BlazeBlock: (B, H, W, C_in) -> (B, H / s, W / s, features)."""
  middle: int
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    y = _depthwise(x.shape[-1], self.stride, 'depthwise_1')(x)
    y = nn.relu(_conv(self.middle, name='project_1')(y))
    y = _depthwise(self.middle, 1, 'depthwise_2')(y)
    y = _conv(self.features, name='project_2')(y)
    return nn.relu(y + _skip(x, self.features, self.stride))


def upsample2x(x):
  """(B, H, W, C) -> (B, 2H, 2W, C), bilinear with half-pixel centres (TF
  RESIZE_BILINEAR half_pixel_centers=True: edge samples clamp)."""
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'linear', antialias=False)


def _flatten_head(x, width):
  """(B, H, W, A * width) -> (B, H * W * A, width): MediaPipe's anchor order."""
  return x.reshape(x.shape[0], -1, width)


class BlazeFace(nn.Module):
  """One MediaPipe BlazeFace network; see the module docstring.

  Attributes:
    variant: 'short', 'full' or 'back'.
  """
  variant: str = 'short'

  @nn.compact
  def __call__(self, images):
    """(B, S, S, 3) RGB [0, 255] -> (regressors (B, N, 16), logits (B, N))."""
    if self.variant not in VARIANTS:
      raise ValueError(f'BlazeFace variant {self.variant!r} is none of '
                       f'{VARIANTS}')
    ch, k = STEM[self.variant]
    x = nn.relu(_conv(ch, k, 2, name='stem')(normalize(images)))
    if self.variant == 'full':
      maps = self._full(x)
    else:
      maps = self._single(x)
    anchors = HEAD_ANCHORS[self.variant]
    # Classifiers first, then regressors: the graphs' execution order.
    scores = [_flatten_head(_conv(a, name=f'classifier_{h}')(m), 1)
              for h, (m, a) in enumerate(zip(maps, anchors))]
    boxes = [_flatten_head(_conv(16 * a, name=f'regressor_{h}')(m), 16)
             for h, (m, a) in enumerate(zip(maps, anchors))]
    return (jnp.concatenate(boxes, axis=1),
            jnp.concatenate(scores, axis=1)[..., 0])

  def _single(self, x):
    maps = []
    for i, (features, stride) in enumerate(BLOCKS[self.variant]):
      x = BlazeBlock(features, stride, name=f'block_{i}')(x)
      if i == HEADS[self.variant]:
        maps.append(x)
    if self.variant == 'back':
      x = _depthwise(x.shape[-1], 2, 'final_depthwise')(x)
      x = nn.relu(_conv(x.shape[-1], name='final_project')(x))
    return maps + [x]

  def _full(self, x):
    taps = []
    for i, (middle, features, stride) in enumerate(DOUBLE_BLOCKS):
      x = DoubleBlazeBlock(middle, features, stride, name=f'block_{i}')(x)
      if i in PYRAMID_TAPS:
        taps.append(x)
    x = taps.pop()
    for level, (ch, middle, repeats) in enumerate(FPN):
      top = nn.relu(_conv(ch, name=f'fpn_{level}_top')(x))
      lateral = nn.relu(_conv(ch, name=f'fpn_{level}_lateral')(taps.pop()))
      x = lateral + upsample2x(top)
      for r in range(repeats):
        x = DoubleBlazeBlock(middle, ch, 1, name=f'fpn_{level}_block_{r}')(x)
    return [x]


def layer_order(variant: str) -> list[tuple[str, str, int]]:
  """(param path, 'conv' | 'depthwise', stride) of every convolution, in the
  TFLite graph's execution order (the converter pairs them one by one)."""
  out = [('stem', 'conv', 2)]
  if variant == 'full':
    def double(prefix, stride):
      return [(f'{prefix}/depthwise_1', 'depthwise', stride),
              (f'{prefix}/project_1', 'conv', 1),
              (f'{prefix}/depthwise_2', 'depthwise', 1),
              (f'{prefix}/project_2', 'conv', 1)]
    for i, (_, _, stride) in enumerate(DOUBLE_BLOCKS):
      out += double(f'block_{i}', stride)
    for level, (_, _, repeats) in enumerate(FPN):
      out += [(f'fpn_{level}_top', 'conv', 1),
              (f'fpn_{level}_lateral', 'conv', 1)]
      for r in range(repeats):
        out += double(f'fpn_{level}_block_{r}', 1)
  else:
    for i, (_, stride) in enumerate(BLOCKS[variant]):
      out += [(f'block_{i}/depthwise', 'depthwise', stride),
              (f'block_{i}/project', 'conv', 1)]
    if variant == 'back':
      out += [('final_depthwise', 'depthwise', 2),
              ('final_project', 'conv', 1)]
  heads = range(len(HEAD_ANCHORS[variant]))
  out += [(f'classifier_{h}', 'conv', 1) for h in heads]
  out += [(f'regressor_{h}', 'conv', 1) for h in heads]
  return out
