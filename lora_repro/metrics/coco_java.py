"""The Java half of the official E2E scorer, run from the jars the `pycocoevalcap` package ships.

The E2E challenge scorer (tuetschek/e2e-metrics) computes METEOR, ROUGE-L and CIDEr with the COCO caption
toolkit: every text goes through the Stanford PTB tokenizer (CoreNLP 3.4.1, `-preserveLines -lowerCase`,
then the toolkit's punctuation list is dropped), and METEOR is METEOR 1.5 (`-l en -norm`, with its English
paraphrase table). No Python re-implementation gives METEOR 1.5's numbers (NLTK's METEOR gives 83.17 where
METEOR 1.5 gives 48.01 on the scorer's own example), so this module runs the official jars:

- `unavailable()`: None when Java and the jars are there, else the exact reason (what to install).
- `ptb_tokenize(texts)`: one JVM call for all texts, as `pycocoevalcap.tokenizer.PTBTokenizer`.
- `meteor_1_5(hyps, refs)`: the METEOR 1.5 server of `pycocoevalcap.meteor.Meteor` (one process per Python
  process, started on first use: loading the paraphrase table takes seconds), ×100.

pycocoevalcap ships `meteor-1.5.jar`, `data/paraphrase-en.gz` and `stanford-corenlp-3.4.1.jar` in its wheel
(nothing is downloaded at run time); Java >= 8 must be on PATH.
"""
from __future__ import annotations

import atexit
import functools
import importlib.util
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

METEOR_JAR = "meteor/meteor-1.5.jar"
PARAPHRASES = "meteor/data/paraphrase-en.gz"
CORENLP_JAR = "tokenizer/stanford-corenlp-3.4.1.jar"
# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS, verbatim (case-sensitive: under -lowerCase the
# tokenizer writes -lrb-/-rrb-, which this list does not remove - the official scorer keeps them too)
PUNCTUATIONS = ("''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                "...", ";")
INSTALL_HINT = ("pip install pycocoevalcap (its wheel ships METEOR 1.5, its paraphrase table and the PTB tokenizer)"
                " and a Java runtime >= 8 on PATH (e.g. apt-get install default-jre-headless)")


def package_dir() -> Path | None:
    """pycocoevalcap's folder (a namespace package: located without importing it), or None."""
    spec = importlib.util.find_spec("pycocoevalcap")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def unavailable() -> str | None:
    """Why the official METEOR 1.5 / PTB tokenizer cannot run here, or None when they can."""
    missing = []
    if shutil.which("java") is None:
        missing.append("no `java` on PATH")
    root = package_dir()
    if root is None:
        missing.append("the pycocoevalcap package is not installed")
    else:
        missing += [f"{root / f} is missing" for f in (METEOR_JAR, PARAPHRASES, CORENLP_JAR)
                    if not (root / f).is_file()]
    return f"{'; '.join(missing)}: {INSTALL_HINT}" if missing else None


class ScorerUnavailable(RuntimeError):
    pass


def _require() -> Path:
    reason = unavailable()
    if reason:
        raise ScorerUnavailable(f"METEOR 1.5 / the PTB tokenizer cannot run: {reason}")
    return package_dir()


def ptb_tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Each text as the official scorer's tokens: Stanford PTB tokenizer, lower-cased, punctuation removed."""
    if not texts:
        return []
    root = _require()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write("\n".join(t.replace("\n", " ") for t in texts))
    try:
        out = subprocess.run(["java", "-cp", str(root / CORENLP_JAR), "edu.stanford.nlp.process.PTBTokenizer",
                              "-preserveLines", "-lowerCase", f.name], capture_output=True, check=True)
    finally:
        Path(f.name).unlink()
    lines = out.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts):
        raise RuntimeError(f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} texts")
    return [[w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS] for line in lines[:len(texts)]]


class _Meteor:
    """The METEOR 1.5 server in `-stdio` mode, spoken to as pycocoevalcap.meteor.Meteor does."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen(["java", "-jar", "-Xmx2G", str(root / METEOR_JAR), "-", "-", "-stdio", "-l", "en",
                                      "-norm"], cwd=str(root / "meteor"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the METEOR 1.5 process ended (see `java -jar meteor-1.5.jar` for its error)")
        return answer.decode().strip()

    def score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
        """Corpus METEOR over (hypothesis, its references) pairs: the EVAL of every segment's statistics."""
        with self.lock:
            stats = [self._ask(" ||| ".join(("SCORE", " ||| ".join(rs), h.replace("|||", "").replace("  ", " "))))
                     for h, rs in zip(hyps, refs)]
            self.proc.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
            self.proc.stdin.flush()
            for _ in stats:  # per-segment scores, then the corpus score
                self.proc.stdout.readline()
            return float(self.proc.stdout.readline().strip())


@functools.lru_cache(maxsize=1)
def _server() -> _Meteor:
    server = _Meteor(_require())
    atexit.register(server.close)
    return server


def meteor_1_5(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """METEOR 1.5 ×100 of PTB-tokenized, space-joined hypotheses against their references."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference lists")
    return 100.0 * _server().score(hyps, refs)
