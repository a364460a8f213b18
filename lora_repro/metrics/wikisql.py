"""WikiSQL scoring as the official `evaluate.py` / `lib/dbengine.py` of salesforce/WikiSQL does it.

A query is (sel, agg, conds): the selected column index, the aggregation index into AGG_OPS and
a list of (column index, COND_OPS index, value). The model writes the dataset's `human_readable`
form, `SELECT [AGG ]<column> FROM table[ WHERE <column> <op> <value>[ AND ...]]`, which is parsed
back with the table header (column names may contain spaces, values may contain " AND ").

- Logical-form accuracy: sel and agg equal, conds equal as a set of (col, op, value) with values
  compared case-insensitively (official `Query.__eq__`, unordered). Numeric values that denote the
  same number ("1998" / "1998.0") also count as equal - the hub stores values as strings, so a
  numeric condition the original data holds as a number can read "1998.0" in the gold while the
  model writes the human-readable "1998". `lf_accuracy_strict` (logged) leaves that out: values
  equal as lower-cased strings only, as the official `Query.__eq__` compares two string values.
- Execution accuracy: both queries run on an in-memory sqlite table built from the example's
  rows (text lower-cased, `real` columns as numbers) and their result lists compared, as
  `DBEngine.execute` does. An unparseable prediction or one that fails to run is wrong.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS = ("=", ">", "<", "OP")
_NUM = re.compile(r"[-+]?\d*\.\d+|[-+]?\d+")


@dataclass(frozen=True)
class Query:
    sel: int
    agg: int
    conds: tuple[tuple[int, int, str], ...] = ()

    def human_readable(self, header: list[str]) -> str:
        agg = f"{AGG_OPS[self.agg]} " if self.agg else ""
        text = f"SELECT {agg}{header[self.sel]} FROM table"
        if self.conds:
            text += " WHERE " + " AND ".join(f"{header[c]} {COND_OPS[o]} {v}" for c, o, v in self.conds)
        return text

    @classmethod
    def from_hub(cls, sql: dict) -> Query:
        """From the hub's `sql` field; `conds` may be a dict of lists (datasets Sequence) or a list of dicts."""
        conds = sql.get("conds") or {}
        if isinstance(conds, dict):
            rows = zip(conds.get("column_index", []), conds.get("operator_index", []), conds.get("condition", []))
        else:
            rows = ((c["column_index"], c["operator_index"], c["condition"]) for c in conds)
        return cls(int(sql["sel"]), int(sql["agg"]), tuple((int(c), int(o), str(v)) for c, o, v in rows))


def _norm_value(v) -> str:
    s = str(v).strip().lower()
    try:
        f = float(s)
        return repr(float(int(f))) if f.is_integer() else repr(f)
    except ValueError:
        return s


def lf_equal(a: Query, b: Query, numeric: bool = True) -> bool:
    norm = _norm_value if numeric else (lambda v: str(v).strip().lower())
    key = lambda q: {(c, o, norm(v)) for c, o, v in q.conds}  # noqa: E731
    return a.sel == b.sel and a.agg == b.agg and len(a.conds) == len(b.conds) and key(a) == key(b)


def _match_column(text: str, pos: int, header: list[str]) -> tuple[int, int] | None:
    """Longest header name (case-insensitive) at `pos` followed by ' <op> '; returns (col, op, end)."""
    low = text.lower()
    best = None
    for i, h in enumerate(header):
        h = h.strip()
        if h and low.startswith(h.lower(), pos) and (best is None or len(h) > len(header[best[0]].strip())):
            for o, op in enumerate(COND_OPS[:3]):
                if text.startswith(f" {op} ", pos + len(h)):
                    best = (i, o, pos + len(h) + len(op) + 2)
                    break
    return best


def parse_human_readable(text: str, header: list[str]) -> Query | None:
    """Parse `SELECT [AGG ]col FROM table[ WHERE ...]` against the header; None if it does not parse."""
    m = re.match(r"^\s*SELECT\s+(.*?)\s+FROM\s+table(?:\s+WHERE\s+(.*?))?\s*$", text, flags=re.S | re.I)
    if not m:
        return None
    cols = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
    sel_text, where = m.group(1).strip(), m.group(2)
    sel = agg = None
    first, _, rest = sel_text.partition(" ")
    if first.upper() in AGG_OPS[1:] and rest.strip().lower() in cols:
        sel, agg = cols[rest.strip().lower()], AGG_OPS.index(first.upper())
    elif sel_text.lower() in cols:
        sel, agg = cols[sel_text.lower()], 0
    if sel is None:
        return None
    conds = []
    if where:
        pos = 0
        while pos < len(where):
            head = _match_column(where, pos, header)
            if head is None:
                return None
            col, op, start = head
            end, search = len(where), start
            while (k := where.find(" AND ", search)) != -1:      # the value ends at an " AND <col> <op> "
                if _match_column(where, k + 5, header):
                    end = k
                    break
                search = k + 1
            conds.append((col, op, where[start:end].strip()))
            pos = end + 5 if end < len(where) else end
    return Query(sel, agg, tuple(conds))


# --- execution --------------------------------------------------------------------------------

def _to_number(v):
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).replace(",", "").strip()
    try:
        return float(s)
    except ValueError:
        found = _NUM.findall(s)
        return float(found[0]) if found else None


class Table:
    """One WikiSQL table in an in-memory sqlite database (columns col0..colN, as dbengine names them)."""

    def __init__(self, header: list[str], types: list[str], rows: list[list]):
        self.types = [t.lower() for t in types] or ["text"] * len(header)
        self.db = sqlite3.connect(":memory:")
        coldefs = ", ".join(f"col{i} {'REAL' if t == 'real' else 'TEXT'}" for i, t in enumerate(self.types))
        self.db.execute(f"CREATE TABLE t ({coldefs})")
        for row in rows:
            vals = [_to_number(v) if t == "real" else str(v).lower() for v, t in zip(row, self.types)]
            self.db.execute(f"INSERT INTO t VALUES ({', '.join('?' * len(vals))})", vals)

    def execute(self, q: Query) -> list:
        select = f"col{q.sel}"
        if q.agg:
            select = f"{AGG_OPS[q.agg]}({select})"
        where, params = [], []
        for c, o, v in q.conds:
            if c >= len(self.types) or o >= 3:
                raise ValueError(f"condition {(c, o, v)} out of range")
            if self.types[c] == "real":
                v = _to_number(v)
                if v is None:
                    raise ValueError(f"non-numeric value for real column {c}")
            else:
                v = str(v).lower()
            where.append(f"col{c} {COND_OPS[o]} ?")
            params.append(v)
        sql = f"SELECT {select} AS result FROM t" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [r[0] for r in self.db.execute(sql, params).fetchall()]


def wikisql_scores(predictions: list[str], golds: list[tuple[dict, dict]]) -> dict[str, float]:
    """Logical-form and execution accuracy ×100. `golds`: (table, sql) per example in the hub schema."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold queries")
    if not golds:
        raise ValueError("no examples to score")
    lf = strict = ex = 0
    for pred_text, (table, sql) in zip(predictions, golds):
        gold = Query.from_hub(sql)
        pred = parse_human_readable(pred_text, list(table["header"]))
        if pred is None:
            continue
        lf += lf_equal(pred, gold)
        strict += lf_equal(pred, gold, numeric=False)
        db = Table(list(table["header"]), list(table.get("types") or []), [list(r) for r in table["rows"]])
        try:
            ex += db.execute(pred) == db.execute(gold)
        except (ValueError, sqlite3.Error):
            pass
    return {"lf_accuracy": 100.0 * lf / len(golds), "execution_accuracy": 100.0 * ex / len(golds),
            "lf_accuracy_strict": 100.0 * strict / len(golds)}
