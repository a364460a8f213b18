"""Sweeps: compose every job of a preset (`compose`), validate them before launching and summarise after
(`guard`, a Hydra callback), and plan what a sweep costs (`plan`, `lora-repro plan`)."""
