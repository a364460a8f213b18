"""GLUE metrics (×100, as Table 2 prints them): accuracy, binary F1, Matthews correlation, Pearson, Spearman."""
from __future__ import annotations

import math
from collections.abc import Sequence


class MetricError(ValueError):
    """A metric that cannot be computed from these values (never reported as a number)."""


def _check(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no examples to score")


def accuracy(predictions: Sequence, references: Sequence) -> float:
    _check(predictions, references)
    return 100.0 * sum(p == r for p, r in zip(predictions, references)) / len(references)


def f1(predictions: Sequence[int], references: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (MRPC/QQP: label 1 = paraphrase/duplicate), as GLUE reports it."""
    _check(predictions, references)
    tp = sum(p == positive and r == positive for p, r in zip(predictions, references))
    fp = sum(p == positive and r != positive for p, r in zip(predictions, references))
    fn = sum(p != positive and r == positive for p, r in zip(predictions, references))
    if tp + fp + fn == 0:
        raise MetricError(f"f1: no example of the positive class {positive!r} in the {len(references)} references "
                          "or predictions: F1 is undefined")
    return 100.0 * 2 * tp / (2 * tp + fp + fn)


def matthews_corr(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Binary Matthews correlation (CoLA). References of one class make it undefined: an error. Predictions of one
    class (a model that has not learned to vary) score 0, the usual convention (scikit-learn's too)."""
    _check(predictions, references)
    if len(set(references)) < 2:
        raise MetricError(f"matthews: all {len(references)} references are {references[0]!r}: the correlation is "
                          "undefined")
    tp = sum(p == 1 and r == 1 for p, r in zip(predictions, references))
    tn = sum(p == 0 and r == 0 for p, r in zip(predictions, references))
    fp = sum(p == 1 and r == 0 for p, r in zip(predictions, references))
    fn = sum(p == 0 and r == 1 for p, r in zip(predictions, references))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else 100.0 * (tp * tn - fp * fn) / denom


def _correlation(name: str, fn, predictions: Sequence[float], references: Sequence[float]) -> float:
    """A correlation ×100. Non-finite values or constant references make it undefined: an error, not 0.0.
    Constant predictions (a model that has not learned to vary) score 0: no correlation, as Matthews does."""
    _check(predictions, references)
    preds, refs = [float(p) for p in predictions], [float(x) for x in references]
    for what, values in (("predictions", preds), ("references", refs)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise MetricError(f"{name}: {len(bad)} of {len(values)} {what} are not finite numbers "
                              f"(first at index {bad[0]}: {values[bad[0]]})")
    if len(set(refs)) < 2:
        raise MetricError(f"{name}: all {len(refs)} references are {refs[0]}: a correlation needs them to vary")
    if len(set(preds)) < 2:
        return 0.0
    return 100.0 * float(fn(preds, refs)[0])


def pearson(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import pearsonr
    return _correlation("pearson", pearsonr, predictions, references)


def spearman(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import spearmanr
    return _correlation("spearman", spearmanr, predictions, references)
