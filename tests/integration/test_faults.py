"""The fault-injection suite (`make fault-test`, `python tools/faults.py`) as part of `make test`:
kill -TERM / kill -9 mid-epoch, a crashing sweep job, a corrupt record, two sweeps into one results dir, SIGTERM to
the whole process tree with W&B on; and the suite against mutants (resume or the run lock switched off), which it
must report as not survived."""
import faults  # tools/faults.py (tests/conftest.py puts tools/ on the path)
import pytest

from lora_repro import mutations


@pytest.mark.slow
def test_fault_suite_survives_every_fault_and_loses_no_record(tmp_path, capsys):
    lines = []
    code = faults.Suite(tmp_path, log=lines.append).run()
    out = capsys.readouterr().out
    assert code == 0, "\n".join(lines)
    assert "faults: 6 injected, 6 survived, 0 records lost" in out
    assert [line.split()[0] for line in lines if line.startswith("  ")] == ["survived"] * 6


@pytest.mark.slow
@pytest.mark.parametrize("mutant,fault", [("no-resume", "sigterm-resume"), ("no-lock", "concurrent-sweeps")])
def test_fault_suite_fails_against_a_mutant(tmp_path, capsys, monkeypatch, mutant, fault):
    """A check that cannot fail proves nothing: with resume switched off the rerun trains from step 0 (same
    bits on a CPU, but it does not say `resumed from step N` and trains every batch); with the run lock
    switched off both sweeps train the job whose lock the harness holds."""
    monkeypatch.setenv(mutations.ENV, mutant)            # the suite's child processes inherit it
    lines = []
    code = faults.Suite(tmp_path, log=lines.append, only=[fault]).run()
    out = capsys.readouterr().out
    assert code == 1 and "faults: 1 injected, 0 survived" in out, "\n".join(lines)
    assert any(line.startswith(f"  FAILED    {fault}:") for line in lines), "\n".join(lines)


def test_unknown_fault_or_mutation_is_refused():
    with pytest.raises(ValueError, match="unknown fault.*sigterm-resume"):
        faults.Suite(None, only=["nosuch"])
    with pytest.raises(ValueError, match="unknown mutation 'no-lok'; known: no-resume, no-lock"):
        mutations.active("no-lok")


def test_records_lost_counts_missing_and_duplicate_identities(tmp_path):
    from lora_repro import records
    suite = faults.Suite(tmp_path, log=lambda _: None)
    suite.expected = {"a" * 16: "present", "b" * 16: "missing"}
    rec = dict(run_id="a" * 16, created_at=records.now_iso(), git_sha=None, model="m", task="t", method="lora", r=8,
               alpha=8, targets=["q"], seed=1, trainable_params=1, total_params=2, metrics={"accuracy": 1.0},
               main_metric="accuracy", peak_vram_bytes=None, tokens_per_s=None, train_wall_s=None, status="finished",
               config={})
    records.write_record(rec, suite.results)
    records.atomic_write_json(records.runs_dir(suite.results) / "copy.json", rec)     # the same identity twice
    lost, problems = suite.records_lost()
    # the copy is no record of its identity any more (records.load_records: its file name is not its run_id),
    # but the suite still fails on it: every problem does
    assert lost == 1 and any("missing" in p for p in problems)
    assert any("copy.json" in p and "is not the file's name" in p for p in problems)
