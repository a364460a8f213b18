"""WikiSQL: parsing the human-readable SQL, logical-form vs execution accuracy on a toy table."""
import pytest

from lora_repro.metrics.wikisql import Query, Table, lf_equal, parse_human_readable, wikisql_scores

HEADER = ["Player", "Team", "Year", "Points", "No. of games"]
TYPES = ["text", "text", "real", "real", "real"]
ROWS = [["Ann Lee", "Boston", "1999", "12", "30"],
        ["Bo Chan", "Boston", "2003", "25", "41"],
        ["Cy Dorn", "Denver", "2003", "7", "12"],
        ["Di Ek", "Boston and Co", "2001", "19", "22"]]
TABLE = {"header": HEADER, "types": TYPES, "rows": ROWS}


def sql(sel, agg, conds):
    return {"human_readable": "", "sel": sel, "agg": agg,
            "conds": {"column_index": [c for c, _, _ in conds], "operator_index": [o for _, o, _ in conds],
                      "condition": [v for _, _, v in conds]}}


def test_parse_round_trip_with_spaces_aggregates_and_and_inside_values():
    q = Query(4, 3, ((1, 0, "Boston and Co"), (2, 1, "2000")))
    text = q.human_readable(HEADER)
    assert text == "SELECT COUNT No. of games FROM table WHERE Team = Boston and Co AND Year > 2000"
    assert parse_human_readable(text, HEADER) == q
    assert parse_human_readable("SELECT Player FROM table", HEADER) == Query(0, 0, ())
    assert parse_human_readable("select max points from table where team = boston", HEADER) \
        == Query(3, 1, ((1, 0, "boston"),))


@pytest.mark.parametrize("bad", ["", "SELECT Salary FROM table", "SELECT Player FROM table WHERE Coach = x",
                                 "Player FROM table", "SELECT Player FROM table WHERE Team ~ Boston"])
def test_unparseable_is_none(bad):
    assert parse_human_readable(bad, HEADER) is None


def test_hub_conds_as_dict_of_lists_or_list_of_dicts():
    a = Query.from_hub(sql(0, 0, [(1, 0, "Boston")]))
    b = Query.from_hub({"sel": 0, "agg": 0, "conds": [{"column_index": 1, "operator_index": 0, "condition": "Boston"}]})
    assert a == b == Query(0, 0, ((1, 0, "Boston"),))


def test_lf_equal_is_order_free_and_case_insensitive():
    a = Query(0, 0, ((1, 0, "Boston"), (2, 1, "2000")))
    assert lf_equal(a, Query(0, 0, ((2, 1, "2000.0"), (1, 0, "BOSTON"))))
    assert not lf_equal(a, Query(0, 0, ((1, 0, "Boston"),)))
    assert not lf_equal(a, Query(0, 3, a.conds))


def test_execution_on_toy_table():
    t = Table(HEADER, TYPES, ROWS)
    assert t.execute(Query(0, 0, ((1, 0, "BOSTON"), (2, 1, "2000")))) == ["bo chan"]
    assert t.execute(Query(3, 1, ((1, 0, "Boston"),))) == [25.0]
    assert t.execute(Query(0, 3, ((2, 0, "2003"),))) == [2]


def test_lf_correct_vs_execution_only_correct():
    gold = sql(0, 0, [(1, 0, "Boston"), (2, 1, "2000")])          # -> ["bo chan"]
    golds = [(TABLE, gold)] * 3
    preds = [
        "SELECT Player FROM table WHERE Year > 2000 AND Team = boston",   # same query, conds reordered
        "SELECT Player FROM table WHERE Points = 25",                    # different query, same result
        "SELECT Player FROM table WHERE Team = Denver",                  # wrong
    ]
    per = [wikisql_scores([p], [g]) for p, g in zip(preds, golds)]
    assert per[0] == {"lf_accuracy": 100.0, "execution_accuracy": 100.0, "lf_accuracy_strict": 100.0}
    assert per[1] == {"lf_accuracy": 0.0, "execution_accuracy": 100.0, "lf_accuracy_strict": 0.0}
    assert per[2] == {"lf_accuracy": 0.0, "execution_accuracy": 0.0, "lf_accuracy_strict": 0.0}
    assert wikisql_scores(preds, golds) == pytest.approx({"lf_accuracy": 100 / 3, "execution_accuracy": 200 / 3,
                                                          "lf_accuracy_strict": 100 / 3})


def test_strict_lf_accuracy_does_not_equate_numbers_written_differently():
    """Review D16: lf_accuracy takes "2000" == "2000.0"; lf_accuracy_strict (as two official string values) does not."""
    gold = sql(0, 0, [(2, 1, "2000.0")])
    m = wikisql_scores(["SELECT Player FROM table WHERE Year > 2000"], [(TABLE, gold)])
    assert m["lf_accuracy"] == 100.0 and m["lf_accuracy_strict"] == 0.0


def test_unparseable_or_unrunnable_prediction_scores_zero():
    golds = [(TABLE, sql(0, 0, [(2, 0, "2003")]))] * 2
    preds = ["garbage", "SELECT Player FROM table WHERE Year = nineteen"]
    assert wikisql_scores(preds, golds) == {"lf_accuracy": 0.0, "execution_accuracy": 0.0, "lf_accuracy_strict": 0.0}
