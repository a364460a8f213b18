"""Speed and memory benchmarks: training tokens/s and peak memory per method (ours, PEFT's LoRA), and the
paper's Table 1 inference latency. Random-init models built from `lora_repro/models/configs` (no download).

    lora-repro bench train --preset gpt2-medium      # on a GPU; `--tiny` runs in seconds on a CPU
    lora-repro bench latency                         # Table 1: results/tables/table1.md
    lora-repro bench summary                         # results/bench/summary.md from the JSON lines

Needs torch and transformers only (peft when present); no hydra, datasets or wandb.
"""
