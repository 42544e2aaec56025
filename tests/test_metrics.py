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
