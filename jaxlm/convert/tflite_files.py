"""Reading TensorFlow Lite model files (.tflite) without TensorFlow.

A .tflite file is one FlatBuffer (schema: tensorflow/lite/schema/
schema.fbs). `read_tflite(path)` walks the few tables a converter needs --
Model -> buffers, operator codes, the first subgraph's tensors and operators
with their builtin options -- with `struct` on the raw bytes, so converting
weights needs neither TensorFlow nor the `flatbuffers` / `tflite` packages.
It returns a `TfliteGraph`:

  constants: {tensor name: numpy array} of every tensor that has data
    (weights, biases, paddings, shapes); float16 weights are widened to
    float32 (the DEQUANTIZE ops that do this inside the graph are folded
    away: an operator input `x_dequantize` reads as `x`);
  ops: the operators in execution order (`TfliteOp`: builtin name, input
    and output tensor names, builtin options as a dict, e.g. `padding`
    'SAME'/'VALID', `stride_h`, `stride_w`, `fused_activation_function`);
  inputs / outputs: the graph's input and output tensor names;
  shapes: {tensor name: shape tuple} of every tensor.

Only the options of the operators BlazeFace-like graphs contain are decoded
(`_OPTIONS`); others read as {}. Quantized (int8) tensors are refused: their
scale / zero point would be needed to read them.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from jaxlm.errors import ConversionError

# schema.fbs `enum BuiltinOperator` (the codes this reader names).
BUILTIN_OPS = {0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION',
               3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D', 6: 'DEQUANTIZE',
               9: 'FULLY_CONNECTED', 14: 'LOGISTIC', 17: 'MAX_POOL_2D',
               18: 'MUL', 19: 'RELU', 21: 'RELU6', 22: 'RESHAPE',
               23: 'RESIZE_BILINEAR', 34: 'PAD', 54: 'PRELU'}
# schema.fbs `enum TensorType` -> numpy dtype (the plain ones).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8,
           4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8}
_PADDING = {0: 'SAME', 1: 'VALID'}
_ACTIVATION = {0: 'NONE', 1: 'RELU', 2: 'RELU_N1_TO_1', 3: 'RELU6',
               4: 'TANH', 5: 'SIGN_BIT'}
# Per operator: (field name, field index in its options table, scalar format,
# default) of schema.fbs Conv2DOptions, DepthwiseConv2DOptions,
# Pool2DOptions, AddOptions, ResizeBilinearOptions, ConcatenationOptions.
_CONV = (('padding', 0, 'b', 0), ('stride_w', 1, 'i', 0),
         ('stride_h', 2, 'i', 0), ('fused_activation_function', 3, 'b', 0),
         ('dilation_w_factor', 4, 'i', 1), ('dilation_h_factor', 5, 'i', 1))
_OPTIONS = {
    'CONV_2D': _CONV,
    'DEPTHWISE_CONV_2D': (('padding', 0, 'b', 0), ('stride_w', 1, 'i', 0),
                          ('stride_h', 2, 'i', 0),
                          ('depth_multiplier', 3, 'i', 0),
                          ('fused_activation_function', 4, 'b', 0),
                          ('dilation_w_factor', 5, 'i', 1),
                          ('dilation_h_factor', 6, 'i', 1)),
    'MAX_POOL_2D': (('padding', 0, 'b', 0), ('stride_w', 1, 'i', 0),
                    ('stride_h', 2, 'i', 0), ('filter_width', 3, 'i', 0),
                    ('filter_height', 4, 'i', 0),
                    ('fused_activation_function', 5, 'b', 0)),
    'ADD': (('fused_activation_function', 0, 'b', 0),),
    'RESIZE_BILINEAR': (('align_corners', 2, '?', False),
                        ('half_pixel_centers', 3, '?', False)),
    'CONCATENATION': (('axis', 0, 'i', 0),
                      ('fused_activation_function', 1, 'b', 0)),
}


@dataclasses.dataclass(frozen=True)
class TfliteOp:
  """One operator: builtin name, input / output tensor names, options."""
  type: str
  inputs: tuple[str, ...]
  outputs: tuple[str, ...]
  options: dict


@dataclasses.dataclass
class TfliteGraph:
  """What a converter reads of a .tflite file (see the module docstring)."""
  constants: dict[str, np.ndarray]
  ops: list[TfliteOp]
  inputs: list[str]
  outputs: list[str]
  shapes: dict[str, tuple[int, ...]]


class _Table:
  """A FlatBuffer table at byte `pos` of `buf` (little-endian)."""

  def __init__(self, buf: bytes, pos: int):
    self.buf, self.pos = buf, pos
    vt = pos - struct.unpack_from('<i', buf, pos)[0]
    self.vt_size = struct.unpack_from('<H', buf, vt)[0]
    self.vt = vt

  def _field(self, index: int) -> int:
    """Absolute position of field `index`, or 0 when absent."""
    at = 4 + 2 * index
    if at >= self.vt_size:
      return 0
    off = struct.unpack_from('<H', self.buf, self.vt + at)[0]
    return self.pos + off if off else 0

  def scalar(self, index: int, fmt: str, default=0):
    p = self._field(index)
    return struct.unpack_from('<' + fmt, self.buf, p)[0] if p else default

  def _ref(self, p: int) -> int:
    return p + struct.unpack_from('<I', self.buf, p)[0]

  def table(self, index: int):
    p = self._field(index)
    return _Table(self.buf, self._ref(p)) if p else None

  def vector(self, index: int):
    """(start, length) of a vector field; (0, 0) when absent."""
    p = self._field(index)
    if not p:
      return 0, 0
    v = self._ref(p)
    return v + 4, struct.unpack_from('<I', self.buf, v)[0]

  def ints(self, index: int, fmt: str = 'i') -> list:
    start, n = self.vector(index)
    return list(struct.unpack_from(f'<{n}{fmt}', self.buf, start)) if n else []

  def tables(self, index: int) -> list:
    start, n = self.vector(index)
    return [_Table(self.buf, self._ref(start + 4 * i)) for i in range(n)]

  def string(self, index: int) -> str:
    start, n = self.vector(index)
    return self.buf[start:start + n].decode('utf-8') if n else ''


def read_tflite(path) -> TfliteGraph:
  """The first subgraph of a .tflite file (see the module docstring)."""
  path = Path(path)
  if not path.is_file():
    raise ConversionError(f'{path}: file not found')
  buf = path.read_bytes()
  if len(buf) < 8 or buf[4:8] != b'TFL3':
    raise ConversionError(f'{path}: not a TensorFlow Lite model (no TFL3 '
                          f'identifier; truncated or another format?)')
  try:
    return _read(buf, path)
  except (struct.error, IndexError, UnicodeDecodeError) as e:
    raise ConversionError(f'{path}: corrupt TensorFlow Lite file ({e})'
                          ) from None


def _read(buf: bytes, path: Path) -> TfliteGraph:
  model = _Table(buf, struct.unpack_from('<I', buf, 0)[0])
  codes = []
  for c in model.tables(1):  # operator_codes
    code = max(c.scalar(0, 'b'), c.scalar(3, 'i'))  # deprecated / current
    codes.append(BUILTIN_OPS.get(code, f'BUILTIN_{code}'))
  buffers = model.tables(4)
  subgraphs = model.tables(2)
  if not subgraphs:
    raise ConversionError(f'{path}: no subgraph')
  graph = subgraphs[0]
  names, shapes, constants = [], {}, {}
  for t in graph.tables(0):  # tensors
    name, shape = t.string(3), tuple(t.ints(0))
    names.append(name)
    shapes[name] = shape
    data = _buffer_bytes(buffers[t.scalar(2, 'I')], buf)
    if data is None:
      continue
    ttype = t.scalar(1, 'b')
    if ttype not in _DTYPES or ttype in (3, 9):
      q = t.table(4)
      if ttype not in _DTYPES or (q and q.vector(1)[1]):
        raise ConversionError(f'{path}: tensor {name!r} is quantized or of '
                              f'type {ttype}; only float32/float16 weights '
                              f'are read')
    arr = np.frombuffer(data, _DTYPES[ttype]).reshape(shape)
    constants[name] = arr.astype(np.float32) if ttype == 1 else arr.copy()
  ops, renamed = [], {}
  for o in graph.tables(3):  # operators
    kind = codes[o.scalar(0, 'I')]
    ins = tuple(renamed.get(names[i], names[i]) if i >= 0 else ''
                for i in o.ints(1))
    outs = tuple(names[i] for i in o.ints(2))
    if kind == 'DEQUANTIZE' and ins[0] in constants:
      renamed[outs[0]] = ins[0]  # float16 weights, widened above
      continue
    ops.append(TfliteOp(kind, ins, outs, _options(kind, o.table(4))))
  return TfliteGraph(constants=constants, ops=ops,
                     inputs=[names[i] for i in graph.ints(1)],
                     outputs=[names[i] for i in graph.ints(2)],
                     shapes=shapes)


def _buffer_bytes(b: _Table, buf: bytes):
  start, n = b.vector(0)
  if n:
    return buf[start:start + n]
  offset, size = b.scalar(1, 'Q'), b.scalar(2, 'Q')  # data after the buffer
  return buf[offset:offset + size] if size > 1 else None


def _options(kind: str, table) -> dict:
  out = {}
  for name, index, fmt, default in _OPTIONS.get(kind, ()):
    v = table.scalar(index, fmt, default) if table else default
    if name == 'padding':
      v = _PADDING.get(v, v)
    elif name == 'fused_activation_function':
      v = _ACTIVATION.get(v, v)
    out[name] = v
  return out
