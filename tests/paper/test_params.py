import csv
import io

import pytest

from lora_repro.paper.params import HEADER, _template, main, table
from lora_repro.paper.rows import within_rounding

# Every count pinned: (model, method as printed incl. †, paper figure) -> (paper count, count incl. head).
EXPECTED = {
    2: [
        ("RoBERTa-base", "FT", "125.0M", 124_055_040, 124_647_170),
        ("RoBERTa-base", "BitFit", "0.1M", 102_144, 694_274),
        ("RoBERTa-base", "AdptD", "0.3M", 304_320, 896_450),
        ("RoBERTa-base", "AdptD", "0.9M", 894_528, 1_486_658),
        ("RoBERTa-base", "LoRA", "0.3M", 294_912, 887_042),
        ("RoBERTa-large", "FT", "355.0M", 354_310_144, 355_361_794),
        ("RoBERTa-large", "LoRA", "0.8M", 786_432, 1_838_082),
        ("RoBERTa-large", "AdptP†", "3.0M", 3_171_840, 4_223_490),
        ("RoBERTa-large", "AdptP†", "0.8M", 811_392, 1_863_042),
        ("RoBERTa-large", "AdptH†", "6.0M", 6_343_680, 7_395_330),
        ("RoBERTa-large", "AdptH†", "0.8M", 835_968, 1_887_618),
        ("RoBERTa-large", "LoRA†", "0.8M", 786_432, 1_838_082),
        ("DeBERTa-XXL", "FT", "1500.0M", 1_564_549_632, 1_566_913_538),
        ("DeBERTa-XXL", "LoRA", "4.7M", 4_718_592, 7_082_498),
    ],
    3: [
        ("GPT-2 Medium", "FT", "354.92M", 354_823_168, 354_823_168),
        ("GPT-2 Medium", "AdapterL", "0.37M", 368_784, 368_784),
        ("GPT-2 Medium", "AdapterL", "11.09M", 11_089_152, 11_089_152),
        ("GPT-2 Medium", "AdapterH", "11.09M", 11_064_576, 11_064_576),
        ("GPT-2 Medium", "FT-Top2", "25.19M", 25_192_448, 25_192_448),
        ("GPT-2 Medium", "PreLayer", "0.35M", 25_750_016, 25_750_016),  # Li & Liang: embedding + MLP
        ("GPT-2 Medium", "LoRA", "0.35M", 393_216, 393_216),
        ("GPT-2 Large", "FT", "774.03M", 774_030_080, 774_030_080),
        ("GPT-2 Large", "AdapterL", "0.88M", 875_808, 875_808),
        ("GPT-2 Large", "AdapterL", "23.00M", 23_002_848, 23_002_848),
        ("GPT-2 Large", "PreLayer", "0.77M", 47_946_752, 47_946_752),
        ("GPT-2 Large", "LoRA", "0.77M", 737_280, 737_280),
    ],
    4: [
        ("GPT-3 175B", "FT", "175,255.8M", 174_604_259_328, 174_604_259_328),
        ("GPT-3 175B", "BitFit", "14.2M", 12_988_416, 12_988_416),
        ("GPT-3 175B", "PreEmbed", "3.2M", 3_244_032, 3_244_032),
        ("GPT-3 175B", "PreLayer", "20.2M", 18_874_368, 18_874_368),
        ("GPT-3 175B", "AdapterH", "7.1M", 7_078_080, 7_078_080),
        ("GPT-3 175B", "AdapterH", "40.1M", 40_109_568, 40_109_568),
        ("GPT-3 175B", "LoRA", "4.7M", 4_718_592, 4_718_592),
        ("GPT-3 175B", "LoRA", "37.7M", 37_748_736, 37_748_736),
    ],
}


@pytest.fixture(scope="module")
def tables():
    return {t: table(t) for t in EXPECTED}


@pytest.mark.parametrize("t", sorted(EXPECTED))
def test_one_row_per_paper_row_in_order(tables, t):
    rows = tables[t]
    assert [(r["model"], r["method"], r["paper_trainable_params"]) for r in rows] == \
        [e[:3] for e in EXPECTED[t]]
    assert len(rows) == {2: 14, 3: 12, 4: 8}[t]


@pytest.mark.parametrize("t, i", [(t, i) for t in sorted(EXPECTED) for i in range(len(EXPECTED[t]))])
def test_every_count_is_pinned(tables, t, i):
    model, method, printed, paper_count, with_head = EXPECTED[t][i]
    row = tables[t][i]
    assert (row["trainable_params"], row["trainable_params_with_head"]) == (paper_count, with_head)


@pytest.mark.parametrize("t", sorted(EXPECTED))
def test_counts_off_the_printed_figure_are_explained(tables, t):
    for row in tables[t]:
        if row["trainable_params"] != "" and not within_rounding(row["trainable_params"],
                                                                 row["paper_trainable_params"]):
            assert len(row["note"]) > 40, row


def test_within_rounding():
    assert within_rounding(294_912, "0.3M") and within_rounding(349_999, "0.35M")
    assert not within_rounding(393_216, "0.35M") and not within_rounding(3_171_840, "3.0M")
    assert within_rounding(174_604_259_328, "174,604.3M") and not within_rounding(174_604_259_328, "175,255.8M")


def test_models_stay_on_the_meta_device():
    model = _template("gpt3-175b-shape")
    assert all(p.is_meta for p in model.parameters())


def test_cli_prints_the_csv(capsys):
    assert main(["--table", "4"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == HEADER and len(rows) == 9
    assert rows[3][:5] == ["GPT-3 175B", "PreEmbed", "prefix_embed prefix_len=256 infix_len=8", "3244032", "3.2M"]


def test_cli_rejects_a_table_it_does_not_know():
    with pytest.raises(SystemExit):
        main(["--table", "5"])


@pytest.mark.parametrize("t", sorted(EXPECTED))
def test_a_methods_own_formula_equals_its_surgery_on_every_paper_row(tables, t):
    """Methods declare the paper's closed-form count (adapters, prefix, LoRA); it agrees with real surgery."""
    rows = [r for r in tables[t] if r["formula_params"] != ""]
    assert rows and all(r["formula_params"] == r["trainable_params"] for r in rows)


def test_successors_counts_are_the_hand_formulas():
    """RoBERTa-base (d 768, 12 blocks) and GPT-2 medium (d 1024, 24 blocks), q and v: LoRA 2 L d r x 2; MoRA r̂²
    with r̂ = even round(sqrt(2 d r)) (rotation): 110 and 90; DoRA adds d per matrix; QLoRA's frozen projections
    take 4 + 8/64 + 32/(64 x 256) bits per weight (+ one fp32 offset per matrix)."""
    from lora_repro.paper.params import successors
    rows = {(r["model"], r["method"]): r for r in successors()}
    for model, d, blocks, r in (("roberta-base", 768, 12, 8), ("gpt2-medium", 1024, 24, 4)):
        lora = 2 * blocks * 2 * d * r
        assert rows[model, "LoRA"]["trainable_params"] == lora
        for same in ("QLoRA", "rsLoRA", "PiSSA", "LoRA+"):
            assert rows[model, same]["trainable_params"] == lora and rows[model, same]["vs_lora"] == "1.000"
        assert rows[model, "DoRA"]["trainable_params"] == lora + 2 * blocks * d
        r_hat = {768: 110, 1024: 90}[d]
        assert rows[model, "MoRA"]["trainable_params"] == 2 * blocks * r_hat ** 2
        assert all(row["formula_params"] == row["trainable_params"] for key, row in rows.items() if key[0] == model)
        assert float(rows[model, "QLoRA"]["frozen_bits_per_weight"]) == pytest.approx(4 + 8 / 64 + 32 / 16384, abs=1e-3)
