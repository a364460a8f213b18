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
- fixture rows: one small player table per row and three query templates (the question names the
  selected column, aggregation and condition values); `phase` is 1 in train, 2 elsewhere.
"""
from __future__ import annotations

import random

from ..metrics.wikisql import AGG_OPS, Query, wikisql_scores
from .base import EvalItem, Task, TaskConfigError, register


class WikiSQLReference(str):
    """The gold human-readable SQL, carrying the example's `table` and `sql` for scoring."""

    def __new__(cls, text: str, table: dict, sql: dict):
        obj = super().__new__(cls, text)
        obj.table, obj.sql = table, sql
        return obj


_HEADER = ["Player", "Team", "Year", "Points"]
_TYPES = ["text", "text", "real", "real"]
_PLAYERS = ("Ann Lee", "Bo Chan", "Cy Dorn", "Di Ek", "Ed Fox", "Flo Gray")
_TEAMS = ("Boston", "Denver", "Miami")


@register
class WikiSQL(Task):
    name = "wikisql"
    train_examples = 56_355
    avg_tokens = 180
    hub_path = "Salesforce/wikisql"
    hub_revision = "refs/convert/parquet"
    columns = ("phase", "question", "table", "sql")
    text_columns = ("question",)
    nested_columns = ("table", "sql")
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

    def fixture_rows(self, split: str, n: int, rng: random.Random) -> list[dict]:
        phase = 1 if split == self.train_split else 2
        rows = []
        for i in range(n):
            players = rng.sample(_PLAYERS, 4)
            table_rows = [[p, rng.choice(_TEAMS), str(rng.randint(1990, 2010)), str(rng.randint(0, 40))]
                          for p in players]
            tid = f"1-{1000 + i}-{phase}"
            table = {"header": _HEADER, "page_title": "Season statistics", "page_id": str(5000 + i), "types": _TYPES,
                     "id": tid, "section_title": "Players", "caption": "Players", "rows": table_rows,
                     "name": f"table_{tid.replace('-', '_')}"}
            kind = rng.randrange(3)
            if kind == 0:      # SELECT Team FROM table WHERE Player = x
                q = Query(1, 0, ((0, 0, table_rows[rng.randrange(4)][0]),))
                question = f"Which team does {q.conds[0][2]} play for?"
            elif kind == 1:    # SELECT COUNT Player FROM table WHERE Team = x
                q = Query(0, 3, ((1, 0, rng.choice(_TEAMS)),))
                question = f"How many players play for {q.conds[0][2]}?"
            else:              # SELECT MAX Points FROM table WHERE Team = x AND Year > y
                q = Query(3, 1, ((1, 0, rng.choice(_TEAMS)), (2, 1, str(rng.randint(1990, 2005)))))
                question = f"What is the most points for {q.conds[0][2]} after {q.conds[1][2]}?"
            sql = {"human_readable": q.human_readable(_HEADER), "sel": q.sel, "agg": q.agg,
                   "conds": {"column_index": [c for c, _, _ in q.conds], "operator_index": [o for _, o, _ in q.conds],
                             "condition": [v for _, _, v in q.conds]}}
            assert AGG_OPS[q.agg] in ("", "COUNT", "MAX")
            rows.append({"phase": phase, "question": question, "table": table, "sql": sql})
        return rows
