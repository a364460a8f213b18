"""E2E scorer metrics and SAMSum ROUGE on hand-computed cases."""
import math

import pytest

from lora_repro.metrics.generation import (
    bleu,
    cider,
    coco_tokenize,
    e2e_metrics,
    mteval_tokenize,
    nist,
    rouge_l,
)
from lora_repro.metrics.rouge import rouge

HYP = "the quick brown fox jumps over the dog"
REF = "the quick brown fox jumped over the lazy dog"


def test_mteval_tokenisation():
    assert mteval_tokenize("The Vaults, near Café 2.5-star.") == ["the", "vaults", ",", "near", "café", "2.5", "-",
                                                                  "star", "."]
    assert coco_tokenize("The Vaults, near it.") == ["the", "vaults", "near", "it"]


def test_bleu_perfect_and_hand_case():
    assert bleu([REF, "a pub ."], [[REF], ["a pub ."]]) == pytest.approx(100.0)
    # p1=7/8, p2=4/7, p3=2/6, p4=1/5, c=8 < r=9 -> BP=exp(1-9/8)
    expected = 100 * math.exp(1 - 9 / 8) * (7 / 8 * 4 / 7 * 2 / 6 * 1 / 5) ** 0.25
    assert bleu([HYP], [[REF]]) == pytest.approx(expected)


def test_bleu_matches_nltk_corpus_bleu_multi_reference():
    from nltk.translate.bleu_score import corpus_bleu
    hyps = [HYP, "a cheap pub in the city centre near the river"]
    refs = [[REF, "a quick brown fox jumps over a dog"],
            ["there is a cheap pub in the city centre", "a pub near the river in the city centre is cheap"]]
    ours = bleu(hyps, refs)
    theirs = 100 * corpus_bleu([[r.split() for r in rs] for rs in refs], [h.split() for h in hyps])
    assert ours == pytest.approx(theirs)


def test_bleu_uses_best_reference_and_is_case_insensitive():
    assert bleu(["The Vaults is a pub ."], [["something else entirely here .", "the vaults is a pub ."]]) \
        == pytest.approx(100.0)


def test_nist_hand_cases():
    # one sentence equal to its single reference: unigram info = log2(len/1) each, higher n-grams carry 0
    assert nist(["a b"], [["a b"]]) == pytest.approx(1.0)
    assert nist(["a b c d"], [["a b c d"]]) == pytest.approx(2.0)
    # half the reference length: unigram info log2(4/1)=2 each, times the penalty exp(-beta*ln(0.5)^2),
    # beta = -ln(0.5)/ln(1.5)^2 (mteval), so the penalty is 0.5 at ratio 2/3
    beta = -math.log(0.5) / math.log(1.5) ** 2
    assert nist(["a b"], [["a b c d"]]) == pytest.approx(2.0 * math.exp(-beta * math.log(0.5) ** 2))


def test_rouge_l_pycocoevalcap_style():
    assert rouge_l(["the cat sat on the mat"], [["the cat is on the mat"]]) == pytest.approx(100 * 5 / 6)
    # max precision and max recall are taken over refs separately: P=1 from ref 2, R=1 from ref 1
    assert rouge_l(["a b c"], [["a b", "a b c d e f"]]) == pytest.approx(100.0)
    assert rouge_l(["x y"], [["a b"]]) == 0.0


def test_cider_identical_refs():
    # two outputs with disjoint vocabularies, each equal to both of its references: cosine 1 for every n,
    # no length penalty -> 10 per output
    preds = ["the vaults is a pub by the river", "zizzi serves cheap italian food downtown"]
    refs = [[preds[0], preds[0]], [preds[1], preds[1]]]
    assert cider(preds, refs) == pytest.approx(10.0)
    # an n-gram present in every document carries no idf weight, so a single document scores 0
    assert cider([preds[0]], [[preds[0]]]) == 0.0
    assert cider(["zizzi serves food", preds[1]], refs) < 10.0


def test_e2e_metrics_keys_match_table3_columns():
    m = e2e_metrics([HYP], [[REF]], official=False)  # no Java: METEOR is left out, never approximated
    assert list(m) == ["BLEU", "NIST", "ROUGE-L", "CIDEr"]


def test_rouge_known_pair():
    # unigrams 5/6 each way; bigrams 3 of 5; LCS 5 of 6
    m = rouge(["the cat sat on the mat"], [["the cat is on the mat"]])
    assert m["rouge1"] == pytest.approx(100 * 5 / 6)
    assert m["rouge2"] == pytest.approx(60.0)
    assert m["rougeL"] == pytest.approx(100 * 5 / 6)
    assert rouge(["cats running"], [["cat runs"]])["rouge1"] == pytest.approx(100.0)   # stemming on


def test_reference_count_mismatch():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        bleu(["a", "b"], [["a"]])


# Values computed with pycocoevalcap 1.2 (Cider(), Rouge()) on the same lower-cased, punctuation-free
# tokens; pinned so the re-implementation cannot drift from the scorer the E2E challenge uses.
COCO_PREDS = ["the vaults is a cheap pub near the river", "zizzi is an italian place in the city centre",
              "blue spice serves french food", "the eagle is a coffee shop"]
COCO_REFS = [["the vaults is a pub by the river with cheap prices",
              "near the river there is a cheap pub called the vaults"],
             ["zizzi is an italian restaurant in the city centre",
              "in the city centre you will find zizzi , an italian restaurant", "zizzi serves italian food"],
             ["blue spice is a french restaurant"],
             ["the eagle coffee shop is in the riverside area", "there is a coffee shop called the eagle"]]


def test_cider_and_rouge_l_match_pycocoevalcap():
    assert cider(COCO_PREDS, COCO_REFS) == pytest.approx(3.571000373244811, rel=1e-12)
    assert rouge_l(COCO_PREDS, COCO_REFS) == pytest.approx(66.75560125194123, rel=1e-12)


def test_empty_and_short_outputs_stay_in_range():
    m = e2e_metrics(["", "a pub ."], [["the pub"], ["a pub .", "x"]], official=False)
    assert 0.0 <= m["BLEU"] <= 100.0 and 0.0 <= m["ROUGE-L"] <= 100.0
    assert m["NIST"] >= 0.0 and m["CIDEr"] >= 0.0
    assert bleu([""], [["the pub"]]) == pytest.approx(0.0, abs=1e-6)
