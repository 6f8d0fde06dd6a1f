"""The benchmark protocols of `jaxlm eval --suite NAME`, one table per name.

The one place that knows how each benchmark is reported: which TFDS
splits are its rows, which normalisers and thresholds its columns, which
landmarks count, and the paper table each protocol follows (Xia's thesis,
chapters 5 and 6: the SLPT/DSLPT/TUFA tables). Evaluators are plug-ins
selected by a name, in the big_vision spirit: `evaluate_suite.py` runs any
`Table` without knowing any dataset.

Columns: every `Metric` gives NME, FR@alpha and AUC@alpha (the CED's area
on [0, alpha] / alpha) of one normaliser over one set of points, computed
in original-image pixels (`metrics.py`):
  inter_ocular  outer eye corners;  inter_pupil  pupil centres (300W: eye
  contour means);  box  sqrt(w * h) of the face box ('NME_box');
  box_diag  the box diagonal ('NME_diag').
Points: 'all' every point with a position (MERL-RAV's self-occluded points
have none and never count, as in Table 6.5); 'unoccluded' the visible
ones; 'occluded' those with a position but externally occluded.

Prompts (TUFA and the other prompted families): a table's rows take the
prompts of the training dataset built from one of `prompts_from` (a TFDS
builder name) with the table's layout when the checkpoint has one, else
zero-shot: the layout's mean shape over `mean_shape_samples` faces of
`calib` (the training split of the same benchmark, never tested on).
"""

from __future__ import annotations

import dataclasses

from jaxlm.errors import JaxlmError


@dataclasses.dataclass(frozen=True)
class Metric:
  """One column group: NME / FR@alpha / AUC@alpha."""
  normaliser: str  # metrics.NORMALISERS
  alpha: float = 0.1
  points: str = 'all'  # 'all' | 'unoccluded' | 'occluded'
  label: str = ''  # the column heading, e.g. 'inter-ocular'


@dataclasses.dataclass(frozen=True)
class Row:
  """One row: a subset, i.e. one TFDS split of the table's builder."""
  label: str
  split: str


@dataclasses.dataclass(frozen=True)
class Table:
  """One benchmark table: rows x metric column groups on one builder."""
  name: str  # file-name key: suite.json records, ced_<name>.png
  title: str
  source: str  # the paper table(s) whose protocol this is
  tfds_name: str  # builder[/config], as `jaxlm build` takes it
  layout: str
  rows: tuple[Row, ...]
  metrics: tuple[Metric, ...]
  prompts_from: tuple[str, ...]  # TFDS builders whose trained prompts fit
  calib: tuple[str, str] = ('', 'train')  # zero-shot mean shape: (tfds
  # name, default: this table's; split)

  @property
  def calib_tfds_name(self) -> str:
    return self.calib[0] or self.tfds_name


IO = Metric('inter_ocular', 0.1, label='inter-ocular')
IP = Metric('inter_pupil', 0.1, label='inter-pupil')
BOX = Metric('box', 0.07, label='box')  # NME_box, AUC_box@0.07 (Ch. 5)

WFLW = Table(
    name='wflw', title='WFLW', tfds_name='wflw', layout='wflw98',
    source='thesis Tables 6.1 and 6.2 (also 4.1, 5.1, 5.2): inter-ocular '
    'NME, FR@0.1, AUC@0.1 on the full test set and its six attribute '
    'subsets',
    rows=(Row('Full', 'test'), Row('Pose', 'test_pose'),
          Row('Expression', 'test_expression'),
          Row('Illumination', 'test_illumination'),
          Row('Make-up', 'test_makeup'), Row('Occlusion', 'test_occlusion'),
          Row('Blur', 'test_blur')),
    metrics=(IO,), prompts_from=('wflw',))

W300 = Table(
    name='300w', title='300W', tfds_name='w300', layout='300w68',
    source='thesis Table 6.3 (also 4.2, 5.3): inter-ocular NME on the '
    'common, challenging and full test sets; inter-pupil added (the '
    'normaliser of the older 300W literature)',
    rows=(Row('Common', 'test_common'),
          Row('Challenging', 'test_challenging'), Row('Full', 'test_full')),
    metrics=(IO, IP), prompts_from=('w300',))

W300_PRIVATE = Table(
    name='300w_private', title='300W-private', tfds_name='w300/private',
    layout='300w68',
    source='thesis Table 6.8 (cross-dataset): inter-ocular NME, AUC@0.08, '
    'FR@0.08 on the indoor, outdoor and full sets; Table 5.5: NME_box, '
    'AUC_box@0.07',
    rows=(Row('Indoor', 'test_indoor'), Row('Outdoor', 'test_outdoor'),
          Row('Full', 'test')),
    metrics=(Metric('inter_ocular', 0.08, label='inter-ocular'),
             BOX),
    prompts_from=('w300',), calib=('w300', 'train'))

W300_MASKED = Table(
    name='300w_masked', title='Masked 300W', tfds_name='w300/masked',
    layout='300w68',
    source='thesis Table 6.7 (cross-dataset): inter-ocular NME on the '
    'common, challenging and full sets',
    rows=W300.rows, metrics=(IO,), prompts_from=('w300',),
    calib=('w300', 'train'))

COFW = Table(
    name='cofw', title='COFW', tfds_name='cofw/cofw29', layout='cofw29',
    source='thesis Table 6.4 (also 4.3, 5.4): inter-ocular and '
    'inter-pupil NME and FR@0.1 on the 507 test faces',
    rows=(Row('Test', 'test'),), metrics=(IO, IP), prompts_from=('cofw',))

COFW68 = Table(
    name='cofw68', title='COFW-68', tfds_name='cofw/cofw68',
    layout='300w68',
    source='thesis Table 6.6 (also 4.4, 5.7; cross-dataset, prompts of '
    '300W): inter-ocular NME and FR@0.1; Tables 5.5 and 5.6: NME_box and '
    'AUC_box@0.07 over all, unoccluded and externally occluded points',
    rows=(Row('Test', 'test'),),
    metrics=(IO, BOX,
             Metric('box', 0.07, 'unoccluded', 'box, unoccluded'),
             Metric('box', 0.07, 'occluded', 'box, occluded')),
    prompts_from=('w300',), calib=('w300', 'train'))

MERLRAV = Table(
    name='merlrav', title='MERL-RAV', tfds_name='merl_rav',
    layout='merlrav68',
    source='thesis Table 6.5 (also 5.10, 5.11): NME_box and AUC_box@0.07 '
    'on the full set and its frontal, half-profile and profile subsets '
    '(self-occluded points have no position and never count), and over '
    'the unoccluded and externally occluded points',
    rows=(Row('Full', 'test'), Row('Frontal', 'test_frontal'),
          Row('Half-profile', 'test_half_profile'),
          Row('Profile', 'test_profile')),
    metrics=(BOX,
             Metric('box', 0.07, 'unoccluded', 'box, unoccluded'),
             Metric('box', 0.07, 'occluded', 'box, occluded')),
    prompts_from=('merl_rav',))

AFLW19 = Table(
    name='aflw19', title='AFLW-19', tfds_name='aflw19', layout='aflw19',
    source='thesis Table 5.8 (also 5.19): NME_diag (the annotated box\'s '
    'diagonal) on the full and frontal test sets; NME_box and '
    'AUC_box@0.07 (sqrt(w * h) of the box)',
    rows=(Row('Full', 'test'), Row('Frontal', 'test_frontal')),
    metrics=(Metric('box_diag', 0.1, label='diag'),
             BOX),
    prompts_from=('aflw19',))

# `jaxlm eval --suite NAME`: the tables each name evaluates, in order.
SUITES: dict[str, tuple[Table, ...]] = {
    'wflw': (WFLW,),
    '300w': (W300, W300_PRIVATE),
    'cofw': (COFW, COFW68),
    'merlrav': (MERLRAV,),
    'aflw19': (AFLW19,),
    'masked300w': (W300_MASKED,),
}


def select(spec: str) -> list[tuple[str, Table]]:
  """(suite name, table) pairs of 'NAME[,NAME...]' or 'all' (any case), in
  order, each table once; an unknown name is one JaxlmError listing the
  known ones."""
  names = [n.strip().lower() for n in spec.split(',') if n.strip()]
  if names == ['all']:
    names = list(SUITES)
  unknown = [n for n in names if n not in SUITES]
  if unknown or not names:
    raise JaxlmError(f'--suite {spec!r}: unknown suite '
                     f'{", ".join(map(repr, unknown)) or "(none given)"}; '
                     f'known: {", ".join(SUITES)}, all')
  seen, out = set(), []
  for n in names:
    for table in SUITES[n]:
      if table.name not in seen:
        seen.add(table.name)
        out.append((n, table))
  return out
