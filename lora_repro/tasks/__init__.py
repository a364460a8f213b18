"""Tasks of the paper: GLUE (8 tasks), E2E NLG, WikiSQL, SAMSum, and MNLI for GPT-2.

| name        | kind           | eval splits (main first)                   | main metric   |
|-------------|----------------|--------------------------------------------|---------------|
| glue/<task> | classification | validation; MNLI: validation_(mis)matched  | see glue.py   |
| glue/stsb   | regression     | validation                                 | pearson       |
| gpt2/mnli   | generation     | validation_matched, validation_mismatched  | accuracy      |
| e2e         | generation     | test                                       | BLEU          |
| wikisql     | generation     | validation                                 | lf_accuracy   |
| samsum      | generation     | test                                       | rouge1        |
| demo/sentiment | classification | heldout, seen (fixture only: `make demo`) | accuracy      |

| name        | hub (config / revision)                      |
|-------------|----------------------------------------------|
| glue/<task> | nyu-mll/glue (<task>)                        |
| glue/stsb   | nyu-mll/glue (stsb)                          |
| gpt2/mnli   | nyu-mll/glue (mnli)                          |
| e2e         | tuetschek/e2e_nlg (refs/convert/parquet)     |
| wikisql     | Salesforce/wikisql (refs/convert/parquet)    |
| samsum      | knkarthick/samsum                            |

Decoder formats (prompt -> target; the full text is prompt + target):
- GLUE / gpt2/mnli: `premise: P\nhypothesis: H\nlabel:` -> ` entailment` (one `<column>: <text>` line per
  text column, then `label:`; STS-B ends `score:` -> ` 3.8`), see glue.py.
- e2e: `name[The Vaults], eatType[pub], ...` -> ` The Vaults is a pub ...`
- wikisql: `table: Player | Team\nquestion: Who plays for Boston?\nSQL:`
  -> ` SELECT Player FROM table WHERE Team = Boston`
- samsum: `Anna: Hi!\nTom: Hello.\n\n` -> `They greet.`
Metrics are on the paper's scale (×100 except NIST and CIDEr). A run with several eval splits logs
`task.merge_split_metrics({split: metrics})`. `fixtures.write_fixture` writes any task's data offline
(from the task's own `fixture_rows`).

Adding a task: one module here (the `Task` subclass with `@register`, its `fixture_rows` and planning
facts `train_examples` / `avg_tokens`) plus `conf/task/<name>.yaml`; every module of this package is
imported, so nothing else lists it.
"""
import importlib
import pkgutil

from .base import TASKS, EvalItem, Task, TaskConfigError, get_task, register

for _module in pkgutil.iter_modules(__path__):   # each module registers its tasks on import: no list to edit
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["EvalItem", "TASKS", "Task", "TaskConfigError", "get_task", "register"]
