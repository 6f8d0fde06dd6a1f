"""The notebooks run in a real Jupyter kernel, and are committed run.

Every `notebooks/*.ipynb` is executed by nbclient in one ipykernel kernel
shared by the notebooks of this file (jax is imported once), on tiny
settings (`JAXLM_NOTEBOOK_TINY=1`: a few faces and steps), against the
trained TUFA fixture run (`JAXLM_NOTEBOOK_RUN`) and random-init SLPT/DSLPT
(their run variables set empty), with this checkout first on the kernel's
PYTHONPATH. After each notebook a check cell, run in the same kernel,
asserts what the notebook computed. The committed files must hold their
outputs (they are read on GitHub), images included, and stay small.
"""

import os
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from conftest import ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(p.name for p in (ROOT / 'notebooks').glob('*.ipynb'))
FIXTURE_RUN = ROOT / 'tests' / 'fixtures' / 'runs_v0' / 'trained'
MAX_BYTES = 1_000_000

# notebook -> a cell run after it in its kernel
CHECKS = {
    'zero_shot.ipynb': '''
assert edited.shape == (len(anchors) + 1, 2)
np.testing.assert_allclose(edited[0], anchors[0] - 0.05, atol=1e-6)
np.testing.assert_array_equal(edited[1:-1], anchors[1:])
assert edited_landmarks.shape == (len(images), len(edited), 2)
# `show` predicted the edited prompts: the same as the Predictor's own
# per-image path (whole image, crop=False), in pixels
for img, pts in zip(images, edited_landmarks):
  np.testing.assert_allclose(pts, pred(img, edited, crop=False)[0], atol=1e-3)
assert len(edit(edited, 'remove', 0)) == len(anchors)
# the widgets call the same functions: move point 2 with the sliders
point.value = 2
sliders[0].value = 0.3
assert editor['selected'] == 2 and editor['prompts'][2, 0] == np.float32(0.3)
buttons['add point'].click()
assert len(editor['prompts']) == len(anchors) + 1 and point.value == len(anchors)
''',
    'attention_maps.ipynb': '''
assert weights.shape == (layers, heads, len(prompts), g * g)
np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
# the captured forward predicted what the normal one does
plain = pred.predict_crops(face[None], prompts)[0][0] * S
np.testing.assert_allclose(landmarks[-1], plain, atol=1e-3)
''',
    'slpt_patches.ipynb': '''
for name in ('slpt', 'dslpt'):
  assert 'RANDOM INITIALISATION' in runs[name][0]
  _, out = outputs[name]
  assert out['box_min'].shape == out['box_size'].shape
half = outputs['dslpt'][1]['box_size'][:, 0, :, 0] / 2
assert np.allclose(half[0], 0.125)
# DSLPT: h' = h * clip(12 max(v), 0.5, 0.7) per landmark
assert ((half[1] >= 0.5 * 0.125 - 1e-6) & (half[1] <= 0.7 * 0.125 + 1e-6)).all()
''',
    'few_shot.ipynb': '''
assert sorted(results) == list(FACES)
for r in list(results.values()) + [zero]:
  assert 0 < r['nme'] < 10 and r['count'] == 4
''',
}


def test_every_notebook_has_a_check():
  assert sorted(CHECKS) == NOTEBOOKS


@pytest.fixture(scope='module')
def kernel(tmp_path_factory):
  """One ipykernel for the notebooks, in an empty working folder (they find
  their runs without it)."""
  cwd = tmp_path_factory.mktemp('notebook_cwd')
  env = dict(os.environ, JAXLM_NOTEBOOK_RUN=str(FIXTURE_RUN),
             JAXLM_NOTEBOOK_TINY='1', JAXLM_NOTEBOOK_SLPT_RUN='',
             JAXLM_NOTEBOOK_DSLPT_RUN='', JAXLM_NO_PROGRESS='1',
             PYTHONPATH=os.pathsep.join(
                 [str(ROOT)] + [p for p in os.environ.get(
                     'PYTHONPATH', '').split(os.pathsep) if p]))
  env.pop('MPLBACKEND', None)  # the kernel's inline backend: PNG outputs
  km = KernelManager(kernel_name='python3')
  km.start_kernel(cwd=str(cwd), env=env)
  yield km
  km.shutdown_kernel(now=True)


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_in_a_kernel(name, kernel):
  nb = nbformat.read(ROOT / 'notebooks' / name, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
  NotebookClient(nb, km=kernel, timeout=300).execute()  # raises on errors
  images = [o for c in nb.cells if c.cell_type == 'code'
            for o in c.outputs if 'image/png' in o.get('data', {})]
  assert images, f'{name} drew no figure'


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_is_committed_with_its_outputs(name):
  path = ROOT / 'notebooks' / name
  assert path.stat().st_size < MAX_BYTES, f'{name}: {path.stat().st_size} B'
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == 'code']
  assert all(c.execution_count for c in code), f'{name}: a cell never ran'
  outputs = [o for c in code for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error'], name
  assert any('image/png' in o.get('data', {}) for o in outputs), (
      f'{name}: committed without its figures')
  text = str(nb)
  for private in (str(Path.home()), str(ROOT)):
    assert private not in text, f'{name} shows the path {private}'
