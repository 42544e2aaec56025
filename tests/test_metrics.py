"""Metrics against hand-computed matrices and against Avalanche's own metric classes."""

from __future__ import annotations

import numpy as np
import pytest

from lifelong import metrics

# Accuracy on experience j (columns) after training experience i (rows).
# Experience 0 peaks after experience 1 (0.95 > 0.90), so Chaudhry's forgetting (max earlier
# minus last) and Avalanche's (just-trained minus last) differ on it.
R = np.array(
    [
        [0.90, 0.10, 0.05],
        [0.95, 0.80, 0.10],
        [0.70, 0.60, 0.85],
    ]
)
UNTRAINED = [0.10, 0.08, 0.12]


def test_hand_computed_values():
    assert metrics.average_accuracy(R) == pytest.approx((0.70 + 0.60 + 0.85) / 3)
    assert metrics.learning_accuracy(R) == pytest.approx((0.90 + 0.80 + 0.85) / 3)
    # Chaudhry: exp0 max(0.90, 0.95) - 0.70 = 0.25; exp1 0.80 - 0.60 = 0.20
    assert metrics.forgetting_chaudhry2018(R) == pytest.approx(0.225)
    # Avalanche / Lopez-Paz: exp0 0.90 - 0.70 = 0.20; exp1 0.20
    assert metrics.forgetting_avalanche(R) == pytest.approx(0.20)
    assert metrics.bwt_lopezpaz2017(R) == pytest.approx(-0.20)
    # FWT: (R[0][1] - b1 + R[1][2] - b2) / 2 = (0.10 - 0.08 + 0.10 - 0.12) / 2 = 0
    assert metrics.fwt_lopezpaz2017(R, UNTRAINED) == pytest.approx(0.0)
    assert metrics.forgetting_curves(R)[0] == [0.90, 0.95, 0.70]


def test_partial_matrix_speaks_of_experiences_seen():
    part = R[:2]
    assert metrics.average_accuracy(part) == pytest.approx((0.95 + 0.80) / 2)
    assert metrics.forgetting_chaudhry2018(part) == pytest.approx(0.90 - 0.95)
    assert metrics.summary(part)["experiences_trained"] == 2
    assert metrics.summary(R[:1])["forgetting_chaudhry2018"] == 0.0


def test_followed_folder_matrix_with_unknown_test_sets():
    nan = float("nan")
    part = np.array([[0.9, nan], [0.7, 0.8]])
    assert metrics.forgetting_chaudhry2018(part) == pytest.approx(0.2)
    assert metrics.fwt_lopezpaz2017(part, [0.1]) is None


def test_bad_matrices():
    with pytest.raises(ValueError, match="2-D"):
        metrics.average_accuracy([0.5, 0.6])
    with pytest.raises(ValueError, match="3 rows but only 2 columns"):
        metrics.average_accuracy(np.zeros((3, 2)))


def test_agree_with_avalanche_metric_classes():
    from avalanche.evaluation.metrics.forgetting_bwt import BWT, Forgetting

    forgetting, bwt = Forgetting(), BWT()
    last = R.shape[0] - 1
    for j in range(last):  # Avalanche tracks experiences trained before the last one
        for m in (forgetting, bwt):
            m.update(j, R[j, j], initial=True)
            m.update(j, R[last, j])
    assert np.mean(list(forgetting.result().values())) == pytest.approx(
        metrics.forgetting_avalanche(R)
    )
    assert np.mean(list(bwt.result().values())) == pytest.approx(metrics.bwt_lopezpaz2017(R))
    # and Chaudhry's definition is genuinely different on this matrix
    assert metrics.forgetting_chaudhry2018(R) != pytest.approx(metrics.forgetting_avalanche(R))


def test_min_acc_and_wc_acc_by_hand():
    """De Lange et al. (ICLR 2023): each earlier experience at its worst at any evaluation
    after it was learned (not at its own end), and WC-ACC = 1/k last + (1 - 1/k) min-ACC."""
    from lifelong.metrics import lowest_since_learned, min_acc, wc_acc

    R = [[0.9, 0.0, 0.0], [0.8, 0.7, 0.0], [0.85, 0.6, 0.95]]
    lowest = []
    lowest = lowest_since_learned(lowest, 0, [0.5, 0.1, 0.0])  # during 0: nothing counts
    lowest = lowest_since_learned(lowest, 0, R[0])  # the end of 0: its own end, not after
    assert lowest == []
    lowest = lowest_since_learned(lowest, 1, [0.4, 0.3, 0.0])  # right after the boundary
    lowest = lowest_since_learned(lowest, 1, R[1])
    lowest = lowest_since_learned(lowest, 2, [0.82, float("nan"), 0.2])  # NaN: not known
    lowest = lowest_since_learned(lowest, 2, R[2])
    assert lowest == [0.4, 0.6]
    assert min_acc(lowest, 3) == pytest.approx(0.5)
    assert wc_acc(R, lowest) == pytest.approx(0.95 / 3 + 2 / 3 * 0.5)
    # from the matrix alone (experience ends): experience 0's worst since is 0.8
    s = metrics.summary(np.array(R))
    assert s["min_acc"] == pytest.approx((0.8 + 0.6) / 2)
    assert metrics.summary(np.array([[0.9]]))["wc_acc"] == pytest.approx(0.9)
