"""The E2E metrics against the official scorer's figures on its own example (tests/metrics/data/e2e_example,
figures in its README): all five with Java (METEOR 1.5 and the PTB tokenizer from pycocoevalcap's jars);
without Java, METEOR is absent rather than another metric under its name."""
from pathlib import Path

import pytest

from lora_repro.metrics import coco_java
from lora_repro.metrics.generation import e2e_metrics

DATA = Path(__file__).parent / "data" / "e2e_example"
# tuetschek/e2e-metrics `measure_scores.py -p` on the files (BLEU and ROUGE-L ×100 and METEOR ×100 here)
OFFICIAL = {"BLEU": 72.02928494322162, "NIST": 7.788887609555574, "METEOR": 48.00716745732023,
            "ROUGE-L": 79.09526131515365, "CIDEr": 2.303943135258847}
needs_java = pytest.mark.skipif(coco_java.unavailable() is not None, reason=f"{coco_java.unavailable()}")


def example():
    refs, block = [], []
    for line in (DATA / "devel-conc.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            block.append(line.strip())
        elif block:
            refs.append(block)
            block = []
    if block:
        refs.append(block)
    hyps = (DATA / "baseline-output.txt").read_text(encoding="utf-8").splitlines()
    assert len(refs) == len(hyps) == 10
    return hyps, refs


@pytest.mark.slow    # starts METEOR 1.5 (a JVM loading its paraphrase table: seconds)
@needs_java
def test_all_five_metrics_equal_the_official_scorer_on_its_example():
    hyps, refs = example()
    ours = e2e_metrics(hyps, refs, official=True)
    assert list(ours) == ["BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr"]
    for key, value in OFFICIAL.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@needs_java
def test_ptb_tokenizer_is_the_official_one():
    # the official quirk: under -lowerCase brackets become -lrb-/-rrb-, which the punctuation list keeps
    assert coco_java.ptb_tokenize(["The Vaults, near Café Adriatic.", "It's cheap (yes)!"]) == [
        ["the", "vaults", "near", "café", "adriatic"], ["it", "'s", "cheap", "-lrb-", "yes", "-rrb-"]]


def test_without_java_meteor_is_absent_and_the_rest_stays_official(monkeypatch):
    monkeypatch.setattr(coco_java.shutil, "which", lambda name: None)
    assert "no `java` on PATH" in coco_java.unavailable() and "pip install pycocoevalcap" in coco_java.unavailable()
    hyps, refs = example()
    with pytest.warns(UserWarning, match="METEOR left out"):
        ours = e2e_metrics(hyps, refs)
    assert list(ours) == ["BLEU", "NIST", "ROUGE-L", "CIDEr"]
    for key in ("BLEU", "NIST", "ROUGE-L"):
        assert ours[key] == pytest.approx(OFFICIAL[key], rel=1e-9), key
    assert ours["CIDEr"] == pytest.approx(OFFICIAL["CIDEr"], rel=5e-3)   # approximate PTB tokenisation
    with pytest.raises(coco_java.ScorerUnavailable, match="no `java` on PATH"):
        e2e_metrics(hyps, refs, official=True)
