"""Train one run: `python experiments/train.py model=roberta-base task=glue/rte method=lora method.r=8 seed=1`.
Multi-GPU: `torchrun --nproc_per_node=8 experiments/train.py ...`. See lora_repro/app.py and conf/."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from lora_repro.app import main  # noqa: E402

if __name__ == "__main__":
    main()
