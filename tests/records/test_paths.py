"""The results dir a user names: a relative path is from the checkout's root, wherever the caller runs."""
from pathlib import Path

from lora_repro import paths


def test_a_relative_results_dir_is_taken_from_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(paths.RESULTS_ENV, "results/demo")
    assert paths.user_results_dir() == paths.REPO_DIR / "results" / "demo"
    assert paths.user_results_dir(tmp_path / "r") == tmp_path / "r"
    assert paths.user_results_dir("~/r") == Path.home() / "r"
    monkeypatch.delenv(paths.RESULTS_ENV)
    assert paths.user_results_dir() == paths.REPO_DIR / "results"
