"""The trained runs the notebooks (`notebooks/*.ipynb`) read, found from any
working folder, and whether they run on tiny settings.

A notebook names the run it needs ('demo', 'slpt', 'dslpt'); `run_folder`
returns, in order:

  * the folder an environment variable names (`RUNS`: JAXLM_NOTEBOOK_RUN for
    the demo, JAXLM_NOTEBOOK_SLPT_RUN, JAXLM_NOTEBOOK_DSLPT_RUN); set but
    empty means "no run" (None, or an error where the run is required);
  * `<repository>/workdirs/<name>`, the repository being the one this
    package is imported from (an editable install or PYTHONPATH): what
    `make demo` and the configs' documented commands write, whatever the
    notebook's working folder;
  * None where the run is optional, else a JaxlmError that says which
    command trains it.

`tiny()`: JAXLM_NOTEBOOK_TINY=1 asks for tiny settings (a few faces and
steps), as the tests execute the notebooks (`tests/test_notebooks.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxlm.errors import JaxlmError

# name -> (environment variable, the command that trains it)
RUNS = {
    'demo': ('JAXLM_NOTEBOOK_RUN', 'make demo'),
    'slpt': ('JAXLM_NOTEBOOK_SLPT_RUN',
             'jaxlm train --config configs/slpt_demo.py --workdir '
             'workdirs/slpt --eval'),
    'dslpt': ('JAXLM_NOTEBOOK_DSLPT_RUN',
              'jaxlm train --config configs/slpt_demo.py:dslpt --workdir '
              'workdirs/dslpt --eval'),
}
TINY_VARIABLE = 'JAXLM_NOTEBOOK_TINY'


def repository() -> Path:
  """The folder above the imported `jaxlm` package (the repository root of
  a source checkout)."""
  return Path(__file__).resolve().parents[1]


def run_folder(name: str = 'demo', required: bool = True) -> Path | None:
  """The run folder notebook run `name` reads (see the module docstring)."""
  if name not in RUNS:
    raise JaxlmError(f'notebook run {name!r}: expected one of '
                     f'{", ".join(RUNS)}')
  variable, command = RUNS[name]
  how = (f'run `{command}` in {repository()} first, or set {variable} to a '
         f'trained run folder')
  given = os.environ.get(variable)
  if given is not None:
    if not given:
      if required:
        raise JaxlmError(f'{variable} is empty: the notebook needs a '
                         f'trained {name} run; {how}')
      return None
    path = Path(given).expanduser()
    if not path.is_dir():
      raise JaxlmError(f'{variable}={given}: no such run folder')
    return path
  path = repository() / 'workdirs' / name
  if path.is_dir():
    return path
  if required:
    raise JaxlmError(f'no trained {name} run at {path}: {how}')
  return None


def tiny() -> bool:
  """Whether JAXLM_NOTEBOOK_TINY asks for tiny settings ('1', 'true')."""
  value = os.environ.get(TINY_VARIABLE, '').strip().lower()
  if value in ('', '0', 'false', 'no'):
    return False
  if value in ('1', 'true', 'yes'):
    return True
  raise JaxlmError(f'{TINY_VARIABLE}={value!r}: expected 1 or 0')
