"""MoRA's memorization experiment (Jiang et al. 2024, Sec 3) on CPU: a model must learn random UUID pairs
(key -> value) that nothing in its weights predicts; MoRA reports LoRA falling behind at low rank because its
update has rank r where MoRA's square matrix has rank up to r̂ for the same parameter count.

The task is generated (a seed makes the fixture): `n_pairs` pairs of fresh UUIDs, written as characters
"<key>:<value>." and learnt with the language-model loss on the value only. The model is a small GPT-2 built
from its config (character vocabulary, random weights, frozen); LoRA and MoRA adapt every projection of every block
at equal budgets (r for LoRA; r̂² ≈ r (d_in + d_out) for MoRA, `lora_repro.methods.mora.mora_rank`). The measure is
the paper's: character-level accuracy of the value given the key (teacher forcing), over training steps.

    python experiments/memorization.py --out results/figures/memorization   # ~ minutes on 2 cores

writes `memorization.png` (accuracy against steps, one line per method) and `memorization.json` (the curves,
the setting and each method's trainable-parameter count).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path

import torch

from lora_repro.methods import apply_method
from lora_repro.train.optim import make_optimizer

CHARS = "0123456789abcdef-:."
PAD = len(CHARS)
TARGETS = ["q", "k", "v", "o", "ffn_in", "ffn_out"]


def uuid_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (key, value) pairs of random UUIDs, the same for the same seed."""
    rng = random.Random(seed)
    return [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            for _ in range(n)]


def encode(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of "<key>:<value>." and a mask of the positions whose next token is a value character."""
    ids = torch.tensor([[CHARS.index(c) for c in f"{k}:{v}."] for k, v in pairs])
    mask = torch.zeros_like(ids, dtype=torch.bool)
    start = len(pairs[0][0]) + 1                    # the ':' predicts the value's first character
    mask[:, start - 1:start - 1 + len(pairs[0][1])] = True
    return ids, mask


def base_model(d: int, layers: int, heads: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(CHARS) + 1, n_positions=80, n_embd=d, n_layer=layers, n_head=heads,
                        bos_token_id=PAD, eos_token_id=PAD, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def char_accuracy(model, ids, mask) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(input_ids=ids).logits[:, :-1].argmax(-1)
    model.train()
    return float((pred == ids[:, 1:])[mask[:, :-1]].float().mean())


def train(method: dict, pairs, *, d, layers, heads, steps, batch, lr, eval_every, seed) -> dict:
    model = base_model(d, layers, heads, seed)
    report = apply_method(model, method)
    ids, mask = encode(pairs)
    optimizer = make_optimizer(model, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    curve = [(0, char_accuracy(model, ids, mask))]
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(pairs), (batch,), generator=g)
        logits = model(input_ids=ids[idx]).logits[:, :-1]
        m = mask[idx, :-1]
        loss = torch.nn.functional.cross_entropy(logits[m], ids[idx, 1:][m])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            curve.append((step, char_accuracy(model, ids, mask)))
    return {"method": report.config, "trainable_params": report.params.trainable_paper, "curve": curve}


def figure(results: dict, path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, res in results.items():
        steps, acc = zip(*res["curve"])
        ax.plot(steps, [100 * a for a in acc], marker=".", label=f"{label} ({res['trainable_params']:,} params)")
    ax.set_xlabel("training steps")
    ax.set_ylabel("character accuracy of the value (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for memorization.png / .json")
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--r", type=int, default=2, help="LoRA's rank; MoRA gets the same budget")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pairs = uuid_pairs(args.pairs, args.seed)
    methods = {
        "LoRA": {"name": "lora", "r": args.r, "alpha": 2 * args.r, "targets": TARGETS},
        "MoRA (sharing)": {"name": "mora", "r": args.r, "kind": "sharing", "targets": TARGETS},
        "MoRA (rotation)": {"name": "mora", "r": args.r, "kind": "rotation", "targets": TARGETS},
    }
    kw = dict(d=args.d, layers=args.layers, heads=args.heads, steps=args.steps, batch=args.batch, lr=args.lr,
              eval_every=args.eval_every, seed=args.seed)
    results = {}
    for label, method in methods.items():
        results[label] = train(method, pairs, **kw)
        print(f"{label}: {results[label]['trainable_params']:,} trainable, final char accuracy "
              f"{100 * results[label]['curve'][-1][1]:.1f}%", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    setting = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / "memorization.json").write_text(json.dumps({"setting": setting, "results": results}, indent=1))
    title = (f"UUID memorization: {args.pairs} pairs, GPT-2 d={args.d} x {args.layers} (random, frozen),\n"
             f"LoRA r={args.r} vs MoRA at equal budget, every projection")
    print(figure(results, args.out / "memorization.png", title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
