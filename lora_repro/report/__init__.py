"""Records -> the paper's tables and figures (`lora-repro tables`, `lora-repro plots`). Imports no torch."""
from .tables import main, write_tables

__all__ = ["main", "write_tables"]
