"""jaxlm: facial landmark detection in JAX/Flax at TPU/GPU scale.

The Python API in five lines:

    import jaxlm
    model = jaxlm.load('workdirs/demo')          # a run, a step, or a name
    out = model.landmarks('face.jpg')             # or arrays, or a batch
    out.points                                    # (N, 2) image pixels
    out.box, out.uncertainty                      # the face box used; std

`jaxlm annotate` labels folders and videos in batches (`jaxlm.annotate`).
"""


def load(checkpoint, batch_size: int = 32):
  """The model of a run folder (its newest readable checkpoint), of one
  step folder, or of official weights by name (`jaxlm pretrained` lists
  them; converted once into the cache), ready for `landmarks(images,
  boxes=None, layout=None)` (`jaxlm.inference.Predictor`); batches of up
  to `batch_size` faces run in one jitted call, data-parallel over this
  process's devices."""
  from jaxlm import pretrained  # pylint: disable=g-import-not-at-top
  from jaxlm.inference import Predictor  # pylint: disable=g-import-not-at-top
  return Predictor(pretrained.resolve(checkpoint), batch_size=batch_size)
