"""`make demo`'s claim on a cut-down scale, through the train app and the demo preset: LoRA on the pretrained
MiniLM scores on sentences whose sentiment words it never saw in training, while the same LoRA on MiniLM's
architecture with random weights (the control, model=minilm-random) stays near chance. Then the demo table."""
import pytest

from tests.integration.test_sweeps import finished, train

pytestmark = pytest.mark.slow


def test_lora_on_the_pretrained_body_transfers_and_the_random_body_does_not(tmp_path, capsys):
    from lora_repro import report
    from lora_repro.tasks.fixtures import write_fixture

    write_fixture("demo/sentiment", tmp_path / "fixtures" / "demo" / "sentiment", n_train=128, n_eval=64)
    train("+experiment=minilm_demo", "+experiment/minilm_demo=lora,lora_random", "trainer.epochs=2",
          results=tmp_path)
    by_model = {r["model"]: r for r in finished(tmp_path).values()}
    assert set(by_model) == {"minilm", "minilm-random"}
    pretrained, control = by_model["minilm"]["metrics"], by_model["minilm-random"]["metrics"]
    assert pretrained["accuracy"] >= 75.0, pretrained          # held-out words
    assert control["accuracy"] <= 65.0, control
    assert pretrained["accuracy"] - control["accuracy"] >= 20.0
    assert report.main(["--results", str(tmp_path), "--tables", "demo", "--print", "demo"]) == 0
    out = capsys.readouterr().out
    assert "| minilm | lora (r=8 alpha=8 targets=q,v) |" in out and "| minilm-random | lora" in out
