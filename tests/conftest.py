"""Fixtures only (shared helpers live in tests/helpers.py): offline everywhere, one torch thread, the
architecture parametrization, and the toy tasks registered for the tests that ask for them."""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers import ARCH_TYPES  # noqa: E402
from tests.toy_tasks import toy_registered  # noqa: E402,F401  (fixture: the toy tasks, for one test)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # tools/faults.py for its test

# Tiny models: one thread is faster than two contending ones (and deterministic).
torch.set_num_threads(1)


@pytest.fixture(params=ARCH_TYPES)
def arch_type(request):
    return request.param


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """HF_HOME=<tmp> (empty), the hub off limits by setting, and any network use an error."""
    import socket

    import datasets.config
    from huggingface_hub import constants

    from lora_repro.run import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.unreachable_reason.cache_clear()

    def no_network(*args, **kwargs):
        raise AssertionError(f"network used: {args}")
    monkeypatch.setattr(socket, "create_connection", no_network)
    yield tmp_path / "hf"
    hub.unreachable_reason.cache_clear()
