"""Understanding the low-rank update: the paper's Sec 7 analyses on finished LoRA runs.

- `adapters`: find a run's LoRA factors (A [r, d_in], B [d_out, r]) per layer and target.
- `subspace`: normalized subspace similarity φ between two runs' A matrices (Figures 3, 4).
- `amplification`: ||UᵀWVᵀ||_F for ΔW's, W's and random directions, amplification factor (Table 7).
- `rank`: the smallest r within 0.5 point of the best median metric of a rank sweep (Table 6).
- `cli`: `lora-repro analyze {subspace,amplification,rank}`.

Needs torch, safetensors, matplotlib (Agg, files only) and transformers (only to load W).
"""
from .adapters import AnalysisError, LoraFactor, LoraRun, load_adapter_dir, load_run
from .subspace import compare_runs, phi, right_singular_basis, subspace_similarity

__all__ = ["AnalysisError", "LoraFactor", "LoraRun", "compare_runs", "load_adapter_dir", "load_run", "phi",
           "right_singular_basis", "subspace_similarity"]
