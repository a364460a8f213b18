"""GLUE metrics on hand-computed cases (×100)."""
import math

import pytest

from lora_repro.metrics.classification import accuracy, f1, matthews_corr, pearson, spearman


def test_accuracy():
    assert accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 75.0


def test_f1_of_positive_class():
    # tp=2 (idx 0,4), fp=1 (idx 1), fn=1 (idx 3) -> 2*2/(4+1+1)
    assert f1([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(100 * 4 / 6)
    assert f1([0, 0], [1, 0]) == 0.0


def test_matthews_on_known_confusion_matrix():
    # tp=6, tn=3, fp=1, fn=2 -> (6*3 - 1*2) / sqrt(7*8*4*5)
    preds = [1] * 6 + [0] * 3 + [1] + [0] * 2
    refs = [1] * 6 + [0] * 3 + [0] + [1] * 2
    assert matthews_corr(preds, refs) == pytest.approx(100 * 16 / math.sqrt(1120))
    assert matthews_corr([1, 1, 1], [1, 0, 1]) == 0.0          # a constant predictor
    assert matthews_corr([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-100.0)


def test_pearson_spearman():
    # x=[1,2,3,4], y=[1,3,2,4]: deviations give sum(dx*dy)=4, sum(dx^2)=sum(dy^2)=5 -> r=0.8 (same on ranks)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(80.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(80.0)
    # monotone but not linear: Spearman is perfect, Pearson is not
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(100.0)
    assert pearson([1, 2, 3, 4], [1, 4, 9, 16]) < 99.0


def test_length_mismatch_and_empty_are_errors():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])


def test_a_correlation_that_cannot_be_computed_is_an_error_never_zero():
    from lora_repro.metrics.classification import MetricError
    with pytest.raises(MetricError, match="pearson: 1 of 4 references are not finite"):
        pearson([1, 2, 3, 4], [1, float("nan"), 2, 4])
    with pytest.raises(MetricError, match="spearman: all 3 references are 2.0"):
        spearman([1, 2, 3], [2, 2, 2])
    with pytest.raises(MetricError, match="predictions are not finite"):
        pearson([1, float("inf"), 3], [1, 2, 3])
    assert pearson([3, 3, 3], [1, 2, 3]) == 0.0     # a constant predictor: no correlation (as Matthews scores it)


def test_f1_and_matthews_that_cannot_be_computed_are_errors():
    from lora_repro.metrics.classification import MetricError
    with pytest.raises(MetricError, match="f1: no example of the positive class 1"):
        f1([0, 0], [0, 0])
    with pytest.raises(MetricError, match="matthews: all 3 references are 1"):
        matthews_corr([0, 1, 1], [1, 1, 1])
    assert matthews_corr([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0      # a constant predictor: 0 by convention
    assert f1([0, 0], [1, 0]) == 0.0                             # defined: positives exist, none found
