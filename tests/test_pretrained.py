"""Official weights by name (`jaxlm pretrained`): download through a local
file:// URL, checksum, interrupted download, --src, the cache reused.

The weights are a one-block DINO ViT-S/16 in the original repository's key
names, written here with random values (safetensors, no torch needed).
"""

import hashlib
import io
import urllib.request

import jax
import numpy as np
import pytest

from jaxlm import checkpoints, cli, pretrained
from jaxlm.errors import JaxlmError


def _dino_file(path, seed=0):
  from safetensors.numpy import save_file
  rng = np.random.default_rng(seed)
  d, h = 384, 1536
  shapes = {'cls_token': (1, 1, d), 'pos_embed': (1, 197, d),
            'patch_embed.proj.weight': (d, 3, 16, 16),
            'patch_embed.proj.bias': (d,), 'norm.weight': (d,),
            'norm.bias': (d,)}
  for k, s in {'norm1.weight': (d,), 'norm1.bias': (d,),
               'attn.qkv.weight': (3 * d, d), 'attn.qkv.bias': (3 * d,),
               'attn.proj.weight': (d, d), 'attn.proj.bias': (d,),
               'norm2.weight': (d,), 'norm2.bias': (d,),
               'mlp.fc1.weight': (h, d), 'mlp.fc1.bias': (h,),
               'mlp.fc2.weight': (d, h), 'mlp.fc2.bias': (d,)}.items():
    shapes[f'blocks.0.{k}'] = s
  save_file({k: rng.normal(0, 0.02, s).astype(np.float32)
             for k, s in shapes.items()}, str(path))
  return path


@pytest.fixture
def entry(tmp_path, monkeypatch):
  """A registry entry served from a local file, and an empty cache."""
  src = _dino_file(tmp_path / 'dino_tiny.safetensors')
  digest = hashlib.sha256(src.read_bytes()).hexdigest()
  monkeypatch.setenv('JAXLM_CACHE', str(tmp_path / 'cache'))
  w = pretrained.Weights('dino-test', 'dino', 'one-block DINO S/16',
                         src.as_uri(), 'tests', sha256=digest)
  monkeypatch.setitem(pretrained.REGISTRY, w.name, w)
  return w, src


def test_download_verify_convert_and_reuse(entry, capsys):
  w, src = entry
  assert cli.main(['pretrained', w.name, '--no-progress']) == 0
  out = capsys.readouterr().out.strip()
  tree, meta = checkpoints.load_weights(out)
  assert meta['variant'] == 'S/16:depth=1'
  from safetensors.numpy import load_file
  sizes = sum(v.size for v in load_file(str(src)).values())
  assert sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)) == sizes
  cached = pretrained.cache_dir() / 'downloads' / src.name
  assert cached.read_bytes() == src.read_bytes()
  src.unlink()  # the cache is reused: the source is not read again
  assert str(pretrained.fetch(w.name)) == out
  assert 'dino-test' in pretrained.table()


def test_wrong_checksum_keeps_nothing(entry, monkeypatch, capsys):
  w, _ = entry
  monkeypatch.setitem(pretrained.REGISTRY, w.name,
                      pretrained.Weights(w.name, w.kind, w.what, w.url,
                                         w.page, sha256='0' * 64))
  assert cli.main(['pretrained', w.name, '--no-progress']) == 2
  assert 'does not match the expected' in capsys.readouterr().err
  cache = pretrained.cache_dir()
  assert not (cache / w.name).exists()
  assert not [p for p in (cache / 'downloads').iterdir()]


def test_interrupted_download_keeps_nothing(entry, monkeypatch):
  w, src = entry
  data = src.read_bytes()

  class Broken(io.BytesIO):
    length = len(data)

    def read(self, n=-1):
      if self.tell() > len(data) // 2:
        raise ConnectionResetError('connection reset by peer')
      return super().read(n)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

  with monkeypatch.context() as m:
    m.setattr(urllib.request, 'urlopen',
              lambda url, timeout=None: Broken(data))
    with pytest.raises(JaxlmError, match='connection reset'):
      pretrained.fetch(w.name, progress=False)
  cache = pretrained.cache_dir()
  assert not list((cache / 'downloads').iterdir())
  assert not (cache / w.name).exists()
  # the same call again, with a working connection, completes
  assert (pretrained.fetch(w.name, progress=False) / 'convert.json').exists()


def test_src_by_hand_and_names_without_url(entry, tmp_path, monkeypatch):
  w, src = entry
  monkeypatch.setitem(pretrained.REGISTRY, w.name, pretrained.Weights(
      w.name, w.kind, w.what, None, 'the authors\' page', sha256=w.sha256))
  with pytest.raises(JaxlmError, match="get it from the authors' page"):
    pretrained.fetch(w.name)
  other = _dino_file(tmp_path / 'other.safetensors', seed=1)
  with pytest.raises(JaxlmError, match='sha256 .* does not match'):
    pretrained.fetch(w.name, src=other)
  out = pretrained.fetch(w.name, src=src)
  assert checkpoints.load_weights(out)[1]['variant'] == 'S/16:depth=1'
  with pytest.raises(JaxlmError, match='an encoder, not a landmark model'):
    pretrained.resolve(w.name)
  with pytest.raises(JaxlmError, match='unknown'):
    pretrained.fetch('no-such-weights')
