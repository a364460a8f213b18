"""Metrics of the paper's tasks, on the paper's scale (percentages ×100; NIST and CIDEr raw).

- `classification`: accuracy, F1, Matthews correlation, Pearson, Spearman (GLUE).
- `generation`: the E2E NLG challenge scorer's five metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr).
- `coco_java`: the scorer's Java parts (METEOR 1.5, the PTB tokenizer) from the `pycocoevalcap` jars.
- `rouge`: ROUGE-1/2/L F-measure via `rouge-score` (SAMSum).
- `wikisql`: parsing the human-readable SQL, logical-form and execution accuracy (WikiSQL).

Only numpy/scipy/nltk/rouge-score (and Java for `coco_java`); nothing here imports torch, datasets or transformers.
"""
