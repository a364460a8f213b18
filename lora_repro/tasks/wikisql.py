"""WikiSQL (Table 4): natural-language question + table schema -> SQL, GPT-3 setup of App C.

Hub `Salesforce/wikisql` is a loading script; its parquet conversion (`refs/convert/parquet`) has
the schema `phase`, `question`, `table{header, page_title, page_id, types, id, section_title,
caption, rows, name}`, `sql{human_readable, sel, agg, conds{column_index, operator_index,
condition}}`; train 56,355 / validation 8,421 (App C), test 15,878.

- prompt (x = {table schema, query}; the paper gives no exact format):
  `table: <col 1> | <col 2> | ...` / `question: <question>` / `SQL:` (lines joined by "\\n")
- target = ` ` + `sql.human_readable`, e.g. ` SELECT COUNT Position FROM table WHERE Team = Boston`.
- metrics: `lf_accuracy` (main; the paper's "logical form validation accuracy") and
  `execution_accuracy`, see `lora_repro.metrics.wikisql`. Scoring needs each example's table and
  gold query: `eval_items` references are `WikiSQLReference` strings (the human-readable SQL)
  that carry them, so `compute_metrics(predictions, [item.references for item in items])` works.
"""
from __future__ import annotations

from ..metrics.wikisql import wikisql_scores
from .base import EvalItem, Task, TaskConfigError, register


class WikiSQLReference(str):
    """The gold human-readable SQL, carrying the example's `table` and `sql` for scoring."""

    def __new__(cls, text: str, table: dict, sql: dict):
        obj = super().__new__(cls, text)
        obj.table, obj.sql = table, sql
        return obj


@register
class WikiSQL(Task):
    name = "wikisql"
    hub_path = "Salesforce/wikisql"
    hub_revision = "refs/convert/parquet"
    columns = ("phase", "question", "table", "sql")
    kind = "generation"
    eval_splits = ("validation",)
    main_metric = "lf_accuracy"
    generation = {"num_beams": 1, "max_new_tokens": 64}  # not in the paper: greedy decoding

    def prompt(self, example: dict) -> str:
        header = " | ".join(example["table"]["header"])
        return f"table: {header}\nquestion: {example['question']}\nSQL:"

    def target(self, example: dict) -> str:
        return " " + example["sql"]["human_readable"]

    def eval_items(self, split) -> list[EvalItem]:
        return [EvalItem(self.prompt(ex), [WikiSQLReference(ex["sql"]["human_readable"], ex["table"], ex["sql"])],
                         {"table_id": ex["table"].get("id")}) for ex in split]

    def compute_metrics(self, predictions: list, references: list) -> dict[str, float]:
        golds = []
        for refs in references:
            ref = refs[0] if isinstance(refs, (list, tuple)) else refs
            if isinstance(ref, EvalItem):
                ref = ref.references[0]
            if not isinstance(ref, WikiSQLReference):
                raise TaskConfigError("wikisql: references must be the WikiSQLReference objects of "
                                      "task.eval_items(split) (they carry the table and gold query); got "
                                      f"{type(ref).__name__}")
            golds.append((ref.table, ref.sql))
        return wikisql_scores([p.strip() for p in predictions], golds)
