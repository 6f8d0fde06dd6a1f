"""Official weights by name: download (or take a file the user downloaded),
verify, convert once into a cache folder, reuse.

  jaxlm pretrained                         # the table of known weights
  jaxlm pretrained dino-vits16             # download, verify, convert
  jaxlm pretrained tufa-multi --src ~/Downloads/TUFA.pth \
      --prompts wflw=Prompt/shape_98.npz w300=Prompt/shape_68.npz \
      cofw=Prompt/shape_29.npz
  python -c "import jaxlm; jaxlm.load('tufa-multi')"

The cache is $JAXLM_CACHE, else ~/.cache/jaxlm: `downloads/<file>` holds
the downloaded files, `<name>/` the converted folder (an `init.encoder`
weights folder for encoders, a run folder for whole models). Downloads go to
a `.part` file renamed only when complete and verified, and conversions to a
temporary folder renamed when complete (`convert`), so an interrupted or
failed step leaves no entry behind and the next call starts it again.

Checksums: an entry's sha256, where jaxlm records one, must match or the
file is refused (and deleted). Where no checksum is recorded (the hosts
publish none), the first download's sha256 is printed and kept beside the
file; `--sha256` pins one. Files behind a sign-in or a form (Google Drive,
gated models) have no URL here: download them by hand and pass `--src`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from jaxlm.errors import JaxlmError

log = logging.getLogger('jaxlm')


@dataclasses.dataclass(frozen=True)
class Weights:
  """One entry of the registry.

  Attributes:
    name: what users type.
    kind: the `jaxlm convert` kind that reads the file.
    what: one line for the table.
    url: a direct download (http(s):// or file://), or None (by hand).
    page: where a person finds the file (and its licence).
    sha256: the file's checksum, or None where none is published.
    whole_model: True for landmark models (`jaxlm.load`), False for
      encoders (`init.encoder`).
    convert: `convert.convert` options (variant, config, ...).
    needs: what else `--src` conversion needs, told to the user.
  """
  name: str
  kind: str
  what: str
  url: str | None
  page: str
  sha256: str | None = None
  whole_model: bool = False
  convert: dict = dataclasses.field(default_factory=dict)
  needs: str = ''


_FB = 'https://dl.fbaipublicfiles.com'
REGISTRY: dict[str, Weights] = {w.name: w for w in (
    Weights('dino-vits16', 'dino', 'DINO v1 ViT-S/16 (TUFA S/16 encoder)',
            f'{_FB}/dino/dino_deitsmall16_pretrain/'
            'dino_deitsmall16_pretrain.pth',
            'https://github.com/facebookresearch/dino',
            convert=dict(variant='S/16')),
    Weights('dino-vits8', 'dino', 'DINO v1 ViT-S/8 (TUFA S/8 encoder)',
            f'{_FB}/dino/dino_deitsmall8_pretrain/'
            'dino_deitsmall8_pretrain.pth',
            'https://github.com/facebookresearch/dino',
            convert=dict(variant='S/8')),
    Weights('dinov2-vits14', 'dinov2', 'DINOv2 ViT-S/14',
            f'{_FB}/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth',
            'https://github.com/facebookresearch/dinov2',
            convert=dict(variant='S/14')),
    Weights('dinov3-vits16', 'dinov3', 'DINOv3 ViT-S/16 (LensMaster encoder)',
            None, 'https://github.com/facebookresearch/dinov3 (gated: '
            'request access, then download the ViT-S/16 .pth)',
            convert=dict(variant='S/16')),
    Weights('tufa-multi', 'tufa', 'TUFA, the thesis\'s unified model (WFLW '
            '+ 300W + COFW)', None,
            'https://github.com/Jiahao-UTS/TUFA (Google Drive link in its '
            'README)', whole_model=True,
            needs='--prompts wflw=Prompt/shape_98.npz w300=Prompt/'
                  'shape_68.npz cofw=Prompt/shape_29.npz (from the TUFA '
                  'repository)'),
    Weights('slpt-wflw', 'slpt', 'SLPT HRNetW18C-lite on WFLW', None,
            'https://github.com/Jiahao-UTS/SLPT_Training (the model link '
            'in its README)', whole_model=True,
            needs='--init Config/init_98.npz (from the SLPT repository)'),
    Weights('dslpt-wflw', 'dslpt', 'DSLPT HRNetW18C on WFLW', None,
            'https://github.com/Jiahao-UTS/DSLPT (the model link in its '
            'README)', whole_model=True,
            needs='--init Config/init_98.npz (from the DSLPT repository)'),
)}


def cache_dir() -> Path:
  return Path(os.path.expanduser(os.environ.get('JAXLM_CACHE') or
                                 '~/.cache/jaxlm'))


def get(name: str) -> Weights:
  if name not in REGISTRY:
    raise JaxlmError(f'pretrained {name!r}: unknown (known: '
                     f'{", ".join(REGISTRY)})')
  return REGISTRY[name]


def table() -> str:
  """The registry as a Markdown table."""
  rows = ['| name | what | source | use |', '|---|---|---|---|']
  for w in REGISTRY.values():
    src = w.url or f'by hand: {w.page}'
    use = ("jaxlm.load('%s')" % w.name if w.whole_model else
           '--config.init.encoder=<path>')
    rows.append(f'| {w.name} | {w.what} | {src} | {use} |')
  return '\n'.join(rows)


def sha256_of(path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 20):
      h.update(chunk)
  return h.hexdigest()


def download(url: str, dst: Path, sha256: str | None = None,
             progress: bool = True) -> str:
  """`url` -> `dst` through a `.part` file renamed when complete and
  verified; returns the sha256. A wrong checksum or a broken transfer
  leaves nothing at `dst`."""
  dst.parent.mkdir(parents=True, exist_ok=True)
  part = dst.with_name(dst.name + f'.part{os.getpid()}')
  h = hashlib.sha256()
  bar = None
  try:
    with urllib.request.urlopen(url, timeout=60) as r, open(part, 'wb') as f:
      if progress:
        from tqdm import tqdm  # pylint: disable=g-import-not-at-top
        bar = tqdm(total=r.length, unit='B', unit_scale=True,
                   desc=dst.name, dynamic_ncols=True)
      while chunk := r.read(1 << 20):
        f.write(chunk)
        h.update(chunk)
        if bar is not None:
          bar.update(len(chunk))
    got = h.hexdigest()
    if sha256 and got != sha256.lower():
      raise JaxlmError(f'{url}: sha256 {got} does not match the expected '
                       f'{sha256}; the file was not kept')
    os.replace(part, dst)
    return got
  except (urllib.error.URLError, OSError, ValueError) as e:
    raise JaxlmError(f'cannot download {url}: {e}; download it by hand and '
                     f'pass --src FILE') from None
  finally:
    if bar is not None:
      bar.close()
    if part.exists():
      part.unlink()


def fetch(name: str, src=None, sha256: str | None = None,
          progress: bool = True, **convert_opts) -> Path:
  """The converted folder of weights `name`: from the cache, else from
  `src` (a file downloaded by hand) or the entry's URL, converted once.
  `convert_opts` go to `convert.convert` (e.g. prompts, init)."""
  w = get(name)
  out = cache_dir() / name
  if out.is_dir() and any(out.iterdir()):
    return out
  want = sha256 or w.sha256
  if src is not None:
    src = Path(os.path.expanduser(str(src)))
    if not src.is_file():
      raise JaxlmError(f'--src {src}: no such file')
    got = sha256_of(src)
    if want and got != want.lower():
      raise JaxlmError(f'--src {src}: sha256 {got} does not match the '
                       f'expected {want} for {name}')
  elif w.url is None:
    raise JaxlmError(f'{name} cannot be downloaded automatically: get it '
                     f'from {w.page}, then run jaxlm pretrained {name} --src '
                     f'FILE' + (f' {w.needs}' if w.needs else ''))
  else:
    src = cache_dir() / 'downloads' / w.url.rsplit('/', 1)[-1]
    if src.is_file():
      got = sha256_of(src)
      if want and got != want.lower():
        log.warning('%s: cached download fails its checksum; downloading '
                    'again', src)
        src.unlink()
    if not src.is_file():
      log.info('downloading %s', w.url)
      got = download(w.url, src, want, progress)
  if not want:
    log.warning('%s: sha256 %s (jaxlm records no checksum for %s; pass '
                '--sha256 to pin one)', src, got, name)
  from jaxlm import convert  # pylint: disable=g-import-not-at-top
  opts = {**w.convert, **{k: v for k, v in convert_opts.items()
                          if v is not None}}
  meta, _ = convert.convert(w.kind, src, out, **opts)
  log.info('converted %s (%s parameters) -> %s', name,
           f'{meta["num_params"]:,}', out)
  return out


def resolve(name_or_path) -> Path:
  """A run folder path as given, or the cached conversion of a registry
  name of a whole model (JaxlmError saying how to get it otherwise)."""
  path = Path(os.path.expanduser(str(name_or_path)))
  if path.exists() or str(name_or_path) not in REGISTRY:
    return path
  w = REGISTRY[str(name_or_path)]
  if not w.whole_model:
    raise JaxlmError(f'{w.name} is an encoder, not a landmark model: run '
                     f'jaxlm pretrained {w.name} and train with '
                     f'--config.init.encoder=<the folder it prints>')
  return fetch(w.name)
