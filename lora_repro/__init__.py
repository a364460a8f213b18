"""lora-repro: a reference suite for reproducing LoRA (Hu et al., 2021, arXiv:2106.09685).

The package is layered; docs/architecture.md draws the layers and says which concept lives where."""

__version__ = "0.1.0"
