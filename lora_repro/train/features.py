"""Examples -> token ids -> padded batches. Padding is dynamic (to the longest row of a batch), so
the tokens counted for tokens/s are the real, non-pad ones.

Encoders see `task.text_pair` + `task.label`. Decoder-only models see `prompt + target + eos` with
the loss on the target tokens only (labels -100 on the prompt); prompts are cut from the left so the
target always survives truncation. A decoder batch also carries `prompt_len` (tokens before the
target): prefix methods put their infix tokens there, where generation puts them (after the prompt).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    label: int | float | list[int]     # class / score for encoders, per-token labels for decoders
    token_type_ids: list[int] | None = None
    prompt_len: int | None = None      # decoders: the target starts here (where an infix goes)


def uses_token_types(model_config) -> bool:
    """RoBERTa has a single token type and DeBERTa-v2 none: feeding a WordPiece tokenizer's segment
    ids to them would index past their table."""
    return (getattr(model_config, "type_vocab_size", 0) or 0) > 1


def encode_encoder(task, split, tokenizer, max_length: int, model_config) -> list[Example]:
    out = []
    types = uses_token_types(model_config)
    for ex in split:
        a, b = task.text_pair(ex)
        enc = tokenizer(a, b, truncation=True, max_length=max_length)
        out.append(Example(list(enc["input_ids"]), task.label(ex),
                           list(enc["token_type_ids"]) if types and "token_type_ids" in enc else None))
    return out


def prompt_ids(tokenizer, prompt: str, budget: int) -> list[int]:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return ids[-budget:] if budget > 0 else []


def encode_decoder(task, split, tokenizer, max_length: int) -> list[Example]:
    out = []
    for ex in split:
        target = tokenizer(task.target(ex), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        target = target[:max_length - 1]
        prompt = prompt_ids(tokenizer, task.prompt(ex), max_length - len(target))
        out.append(Example(prompt + target, [IGNORE] * len(prompt) + target, prompt_len=len(prompt)))
    return out


def collate(examples: list[Example], pad_id: int, decoder: bool, regression: bool = False) -> dict:
    """Right-pad to the batch's longest row."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, :len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, :len(e.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if examples[0].token_type_ids is not None:
        types = torch.zeros_like(ids)
        for i, e in enumerate(examples):
            types[i, :len(e.token_type_ids)] = torch.tensor(e.token_type_ids)
        batch["token_type_ids"] = types
    if decoder:
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        for i, e in enumerate(examples):
            labels[i, :len(e.label)] = torch.tensor(e.label)
        if examples[0].prompt_len is not None:
            batch["prompt_len"] = torch.tensor([e.prompt_len for e in examples], dtype=torch.long)
    else:
        labels = torch.tensor([e.label for e in examples], dtype=torch.float if regression else torch.long)
    batch["labels"] = labels
    return batch


def left_pad(rows: list[list[int]], pad_id: int) -> dict:
    """Prompts for batched generation: left-padded so every row ends where generation starts."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """The data order of one epoch: a function of (seed, epoch) only, so a resumed run replays it.
    Under DDP each rank takes every world-th index (equal counts, like DistributedSampler without padding)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    if world > 1:
        order = order[:len(order) - len(order) % world][rank::world]
    return order
