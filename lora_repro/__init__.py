"""lora-repro: a reference suite for reproducing LoRA (Hu et al., 2021, arXiv:2106.09685)."""
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
PAPER_DATA_DIR = PACKAGE_DIR / "paper_data"      # the paper's tables and hyperparameters, with sources
MODEL_CONFIGS_DIR = PACKAGE_DIR / "model_configs"  # architecture configs of the paper's models
