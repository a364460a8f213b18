"""The E2E NLG challenge scorer (tuetschek/e2e-metrics), multi-reference.

The official scorer computes BLEU and NIST with its own port of mteval-v13a (`pymteval.py`) and
METEOR, ROUGE-L and CIDEr with the COCO caption toolkit (`pycocoevalcap`: the Stanford PTB tokenizer,
Java METEOR 1.5). Here:

| key       | as in the official scorer                                                      | scale |
|-----------|---------------------------------------------------------------------------------|-------|
| `BLEU`    | corpus BLEU-4, mteval-v13a tokenisation, case-insensitive, clipped counts       | ×100  |
|           | against all refs, closest ref length (ties: shorter) for the brevity penalty   |       |
| `NIST`    | corpus NIST-5, information weights from the reference n-gram counts            | raw   |
| `METEOR`  | the official METEOR 1.5 jar (`coco_java`, needs Java); left OUT without Java:  | ×100  |
|           | no Python METEOR gives its numbers (NLTK's: 83.17 vs 48.01 on the example)     |       |
| `ROUGE-L` | pycocoevalcap Rouge: per output, max LCS precision and max LCS recall over its  | ×100  |
|           | refs, F with β=1.2, averaged over outputs                                       |       |
| `CIDEr`   | pycocoevalcap CIDEr-D: n=1..4, tf-idf over the eval set's refs, σ=6 length      | raw   |
|           | penalty, clipped, ×10                                                           |       |

With Java, the COCO metrics see the official PTB tokens, and all five equal the official scorer's on
its example (tests/metrics/test_e2e_official.py). Without Java they see lower-cased mteval tokens minus
the PTB punctuation (`coco_tokenize`, an approximation: CIDEr 2.2964 vs 2.3039 on the example; ROUGE-L
equal) and METEOR is absent, so no other metric is ever printed as METEOR beside the paper's number.
"""
from __future__ import annotations

import functools
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

from . import coco_java

# --- tokenisation -----------------------------------------------------------------------------

_SGML = (("<skipped>", ""), ("-\n", ""), ("\n", " "), ("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"),
         ("&gt;", ">"))
_PTB_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
              "...", ";", "(", ")", "{", "}", "[", "]", '"'}


def mteval_tokenize(text: str) -> list[str]:
    """mteval-v13a's basic (Western) tokenisation, lower-cased: punctuation split off, except
    periods/commas inside numbers and dashes not preceded by a digit."""
    for a, b in _SGML:
        text = text.replace(a, b)
    text = f" {text} "
    text = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", text)
    text = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", text)
    text = re.sub(r"([\.,])([^0-9])", r" \1 \2", text)
    text = re.sub(r"([0-9])(-)", r"\1 \2 ", text)
    return text.lower().split()


def coco_tokenize(text: str) -> list[str]:
    return [t for t in mteval_tokenize(text) if t not in _PTB_PUNCT]


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _max_ref_counts(refs: Sequence[Sequence[str]], n: int) -> Counter:
    merged: Counter = Counter()
    for ref in refs:
        merged |= _ngrams(ref, n)          # elementwise max
    return merged


def _prepare(predictions: Sequence[str], references: Sequence[Sequence[str]], tok) -> tuple[list, list]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        raise ValueError("no examples to score")
    refs = []
    for r in references:
        r = [r] if isinstance(r, str) else list(r)
        if not r:
            raise ValueError("an output has no reference")
        refs.append([tok(x) for x in r])
    return [tok(p) for p in predictions], refs


# --- BLEU and NIST (pymteval) -----------------------------------------------------------------

def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Corpus BLEU ×100; zero counts are floored at 1e-15 (as pymteval) so BLEU stays defined.
    An output shorter than n has no n-grams (pymteval adds a negative count there, which can push
    its BLEU above 100 when outputs are empty; mteval and NLTK count zero, as here)."""
    hyps, refs = _prepare(predictions, references, mteval_tokenize)
    hits, totals, ref_len = [0] * max_n, [0] * max_n, 0
    for hyp, rs in zip(hyps, refs):
        for n in range(1, max_n + 1):
            h = _ngrams(hyp, n)
            merged = _max_ref_counts(rs, n)
            hits[n - 1] += sum(min(c, merged[g]) for g, c in h.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
        ref_len += len(min(rs, key=lambda r: (abs(len(r) - len(hyp)), len(r))))
    cand_len = totals[0]
    bp = 1.0 if cand_len > ref_len else math.exp(1.0 - ref_len / (cand_len or 1e-5))
    log_prec = sum(math.log(max(h, 1e-15) / max(t, 1e-9)) for h, t in zip(hits, totals)) / max_n
    return 100.0 * bp * math.exp(log_prec)


_NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2


def nist(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 5) -> float:
    """Corpus NIST: information-weighted n-gram matches (info from all reference n-gram counts),
    times the NIST length penalty against the average reference length."""
    hyps, refs = _prepare(predictions, references, mteval_tokenize)
    ref_counts: list[Counter] = [Counter() for _ in range(max_n + 1)]
    hit_ngrams: list[Counter] = [Counter() for _ in range(max_n)]
    totals = [0] * max_n
    avg_ref_len = 0.0
    for hyp, rs in zip(hyps, refs):
        for n in range(1, max_n + 1):
            totals[n - 1] += max(0, len(hyp) - n + 1)
            merged = _max_ref_counts(rs, n)
            for g, c in _ngrams(hyp, n).items():
                if merged[g]:
                    hit_ngrams[n - 1][g] += min(c, merged[g])
            for r in rs:
                ref_counts[n].update(_ngrams(r, n))
        ref_counts[0][()] += sum(len(r) for r in rs)
        avg_ref_len += sum(len(r) for r in rs) / len(rs)

    def info(g: tuple) -> float:
        return math.log2(ref_counts[len(g) - 1][g[:-1]] / ref_counts[len(g)][g]) if ref_counts[len(g)][g] else 0.0

    score = sum(sum(info(g) * c for g, c in hit_ngrams[n].items()) / totals[n]
                for n in range(max_n) if totals[n] > 0)
    ratio = totals[0] / avg_ref_len if avg_ref_len else 0.0
    penalty = 1.0 if ratio >= 1 else 0.0 if ratio <= 0 else math.exp(-_NIST_BETA * math.log(ratio) ** 2)
    return penalty * score


# --- ROUGE-L (pycocoevalcap) ------------------------------------------------------------------

def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2,
            tokenize: Callable[[str], list[str]] = coco_tokenize) -> float:
    hyps, refs = _prepare(predictions, references, tokenize)
    total = 0.0
    for hyp, rs in zip(hyps, refs):
        lcs = [_lcs(r, hyp) for r in rs]
        p = max((length / len(hyp) if hyp else 0.0) for length in lcs)
        r = max((length / len(ref) if ref else 0.0) for length, ref in zip(lcs, rs))
        if p > 0 and r > 0:
            total += (1 + beta ** 2) * p * r / (r + beta ** 2 * p)
    return 100.0 * total / len(hyps)


# --- CIDEr-D (pycocoevalcap) ------------------------------------------------------------------

def cider(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4,
          sigma: float = 6.0, tokenize: Callable[[str], list[str]] = coco_tokenize) -> float:
    """CIDEr-D: document frequencies over the eval set's references (one document per output)."""
    hyps, refs = _prepare(predictions, references, tokenize)

    def counts(tokens):
        c: Counter = Counter()
        for n in range(1, max_n + 1):
            c.update(_ngrams(tokens, n))
        return c

    hyp_counts = [counts(h) for h in hyps]
    ref_counts = [[counts(r) for r in rs] for rs in refs]
    df: Counter = Counter()
    for rcs in ref_counts:
        df.update(set().union(*(rc.keys() for rc in rcs)))
    log_docs = math.log(float(len(refs)))

    def vec(cnts):
        v = [dict() for _ in range(max_n)]
        norm = [0.0] * max_n
        length = 0
        for g, tf in cnts.items():
            n = len(g) - 1
            v[n][g] = tf * (log_docs - math.log(max(1.0, df[g])))
            norm[n] += v[n][g] ** 2
            if n == 1:
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    def sim(vh, nh, lh, vr, nr, lr):
        penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
        out = []
        for n in range(max_n):
            val = sum(min(w, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, w in vh[n].items())
            if nh[n] != 0 and nr[n] != 0:
                val /= nh[n] * nr[n]
            out.append(val * penalty)
        return out

    total = 0.0
    for hc, rcs in zip(hyp_counts, ref_counts):
        vh, nh, lh = vec(hc)
        per_n = [0.0] * max_n
        for rc in rcs:
            for n, s in enumerate(sim(vh, nh, lh, *vec(rc))):
                per_n[n] += s
        total += sum(per_n) / max_n / len(rcs) * 10.0
    return total / len(hyps)


def official_tokenizer(texts: Sequence[str]) -> Callable[[str], list[str]]:
    """The official PTB tokens of `texts` (one JVM call), as a lookup."""
    unique = list(dict.fromkeys(texts))
    table = dict(zip(unique, coco_java.ptb_tokenize(unique)))
    return table.__getitem__


def e2e_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]],
                official: bool | None = None) -> dict[str, float]:
    """The E2E challenge metrics of Table 3 (keys as the table's columns).

    official=None: the official Java parts when they can run (else the approximation, METEOR left out,
    with a warning naming what is missing); True: require them; False: never start Java."""
    reason = coco_java.unavailable() if official is not False else "official=False"
    if official and reason:
        raise coco_java.ScorerUnavailable(f"METEOR 1.5 / the PTB tokenizer cannot run: {reason}")
    out = {"BLEU": bleu(predictions, references), "NIST": nist(predictions, references)}
    if reason is None:
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        tok = official_tokenizer([*predictions, *(r for rs in refs for r in rs)])
        out["METEOR"] = coco_java.meteor_1_5([" ".join(tok(p)) for p in predictions],
                                             [[" ".join(tok(r)) for r in rs] for rs in refs])
    else:
        tok = coco_tokenize
        if official is None:
            _warn_no_meteor(reason)
    out["ROUGE-L"] = rouge_l(predictions, references, tokenize=tok)
    out["CIDEr"] = cider(predictions, references, tokenize=tok)
    return out


@functools.cache
def _warn_no_meteor(reason: str) -> None:
    warnings.warn(f"E2E METEOR left out (METEOR 1.5 needs Java): {reason}; ROUGE-L/CIDEr use the approximate "
                  "PTB tokenisation", stacklevel=3)
