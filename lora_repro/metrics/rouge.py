"""ROUGE-1/2/L F-measure (×100) with Porter stemming via Google's `rouge-score` (SAMSum, Table 4).

Per summary the best-scoring reference counts (SAMSum has one); the corpus score is the mean
over summaries. `rougeL` is sentence-level LCS (no newline splitting), as `rouge-score` computes it.
"""
from __future__ import annotations

from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]],
          types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        raise ValueError("no examples to score")
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    for pred, refs in zip(predictions, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        for t in types:
            totals[t] += max(scorer.score(ref, pred)[t].fmeasure for ref in refs)
    return {t: 100.0 * v / len(predictions) for t, v in totals.items()}
