"""Metrics against values computed by hand (and scipy's Simpson rule)."""

import numpy as np
import pytest

from jaxlm import metrics, plots


def _face68():
  gt = np.zeros((1, 68, 2))
  gt[0, 36] = [10, 20]  # outer eye corners 36 / 45: 30 apart
  gt[0, 45] = [40, 20]
  gt[0, 36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]
  gt[0, 42:48] = [[32, 20], [34, 18], [36, 18], [38, 20], [36, 22], [34, 22]]
  gt[0, 45] = [38, 20]
  return gt


def test_inter_ocular_and_inter_pupil_300w():
  gt = _face68()
  assert metrics.normaliser(gt, '300w68', 'inter_ocular')[0] == pytest.approx(28.0)
  # pupils: means of 36-41 -> (13, 20) and 42-47 -> (35, 20)
  assert metrics.normaliser(gt, '300w68', 'inter_pupil')[0] == pytest.approx(22.0)


def test_wflw_and_cofw_indices():
  gt = np.zeros((1, 98, 2))
  gt[0, 60], gt[0, 72], gt[0, 96], gt[0, 97] = [0, 0], [3, 4], [1, 1], [2, 1]
  assert metrics.normaliser(gt, 'wflw98')[0] == pytest.approx(5.0)
  assert metrics.normaliser(gt, 'wflw98', 'inter_pupil')[0] == pytest.approx(1.0)
  gt = np.zeros((1, 29, 2))
  gt[0, 8], gt[0, 9], gt[0, 16], gt[0, 17] = [0, 0], [6, 8], [1, 0], [4, 4]
  assert metrics.normaliser(gt, 'cofw29')[0] == pytest.approx(10.0)
  assert metrics.normaliser(gt, 'cofw29', 'inter_pupil')[0] == pytest.approx(5.0)


def test_box_normalisers():
  boxes = np.array([[0, 0, 4, 9]])
  assert metrics.normaliser(None, 'wflw98', 'box', boxes)[0] == pytest.approx(6.0)
  assert metrics.normaliser(None, 'wflw98', 'box_diag', boxes)[0] == \
      pytest.approx(np.sqrt(97))
  with pytest.raises(ValueError, match='boxes'):
    metrics.normaliser(np.zeros((1, 98, 2)), 'wflw98', 'box')


def test_nme_by_hand_and_mask():
  gt = np.zeros((1, 3, 2))
  pred = np.array([[[3, 4], [0, 0], [0, 1]]], float)  # errors 5, 0, 1
  assert metrics.nme(pred, gt, [2.0])[0] == pytest.approx(1.0)  # (6/3)/2
  mask = np.array([[1, 1, 0]])
  assert metrics.nme(pred, gt, [2.0], mask)[0] == pytest.approx(1.25)
  assert np.isnan(metrics.nme(pred, gt, [1.0], np.zeros((1, 3)))[0])


def test_failure_rate():
  assert metrics.failure_rate([0.05, 0.1, 0.11, 0.2], 0.1) == 0.5


def test_auc_constant_error_by_hand():
  # Every face has NME 0.04: CED is 0 below 0.04 and 1 from it on, so the
  # area over [0, 0.1] is 0.06 and AUC = 0.6 (up to one grid step).
  assert metrics.auc([0.04] * 10, 0.1) == pytest.approx(0.6, abs=2e-3)
  assert metrics.auc([0.0] * 3, 0.1) == pytest.approx(1.0, abs=1e-9)
  assert metrics.auc([0.5] * 3, 0.1) == 0.0


def test_auc_matches_scipy_simpson():
  scipy_integrate = pytest.importorskip('scipy.integrate')
  rng = np.random.default_rng(0)
  nmes = rng.gamma(2.0, 0.02, 500)
  grid, frac = metrics.ced(nmes, 0.1)
  want = scipy_integrate.simpson(frac, x=grid) / 0.1
  assert metrics.auc(nmes, 0.1) == pytest.approx(want, rel=1e-9)
  # CED at the grid points is the empirical CDF.
  assert frac[500] == pytest.approx(np.mean(nmes <= grid[500]))


def test_summarize_and_breakdown():
  s = metrics.summarize([0.02, 0.2, np.nan])
  assert s['count'] == 2 and s['nme'] == pytest.approx(0.11)
  assert s['fr'] == 0.5
  b = metrics.breakdown(np.array([0.02, 0.2]), {'pose': [False, True]})
  assert b['pose']['nme'] == pytest.approx(0.2)


def test_ced_plot_is_written(tmp_path):
  plots.plot_ced({'a': [0.01, 0.05], 'b': [0.03]}, tmp_path / 'ced.png')
  assert (tmp_path / 'ced.png').stat().st_size > 1000


def test_jitter_hand_values():
  from jaxlm.metrics import jitter
  truth = np.zeros((3, 2, 2))
  truth[:, :, 0] = np.arange(3)[:, None] * 5.0  # true motion: 5 px a frame
  pred = truth.copy()
  assert jitter(pred, truth, 10.0) == 0.0  # following the truth is no jitter
  pred[1, 0] += (3.0, 4.0)  # point 0 off by 5 px on frame 1 only
  # |e1 - e0| = 5 and |e2 - e1| = 5 for point 0, 0 for point 1:
  # mean over points 2.5 per step, / 10 -> 0.25
  assert np.isclose(jitter(pred, truth, 10.0), 0.25)
  assert np.isclose(jitter(pred, truth, np.array([1.0, 10.0, 5.0])),
                    (2.5 / 10 + 2.5 / 5) / 2)
