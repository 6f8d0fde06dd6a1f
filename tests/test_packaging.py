"""pyproject.toml lists every package (the list is explicit because configs/
is installed as `jaxlm.configs`), and the configs import from anywhere."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
  listed = set(tomllib.loads((ROOT / 'pyproject.toml').read_text())
               ['tool']['setuptools']['packages'])
  found = {'.'.join(p.parent.relative_to(ROOT).parts)
           for p in (ROOT / 'jaxlm').rglob('__init__.py')}
  found.add('jaxlm.configs')
  assert found == listed, (f'missing from pyproject.toml: {found - listed}; '
                           f'listed but absent: {listed - found}')


def test_configs_import_without_the_repository_on_sys_path(tmp_path):
  code = ('from jaxlm.configs import tufa_demo, tufa_vits8_multi; '
          'print(tufa_demo.get_config().model.name)')
  out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path,
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip() == 'tufa'
