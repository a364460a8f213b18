"""Evaluation of one split: encoders by their head's predictions, decoder-only models by generation
(beam search with the task's settings, overridable from the config). The task scores the predictions."""
from __future__ import annotations

import contextlib

import torch

from .features import collate, left_pad, prompt_ids

GENERATION_KEYS = ("num_beams", "length_penalty", "no_repeat_ngram_size", "max_new_tokens")
DEFAULT_GENERATION = {"num_beams": 1, "length_penalty": 1.0, "no_repeat_ngram_size": 0, "max_new_tokens": 64}


def generation_settings(task, overrides: dict | None) -> dict:
    """The task's generation settings with the config's non-null overrides on top."""
    out = {**DEFAULT_GENERATION, **dict(task.generation or {})}
    for key, value in dict(overrides or {}).items():
        if key not in GENERATION_KEYS:
            raise ValueError(f"task.generation.{key}: unknown generation option; valid: {list(GENERATION_KEYS)}")
        if value is not None:
            out[key] = value
    return out


def _chunks(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


@torch.no_grad()
def evaluate_encoder(model, task, examples, batch_size, pad_id, device, autocast, bar=None) -> dict:
    model.eval()
    preds, refs = [], []
    regression = task.kind == "regression"
    for chunk in _chunks(examples, batch_size):
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id, decoder=False, regression=regression).items()}
        labels = batch.pop("labels")
        with autocast():
            logits = model(**batch).logits.float()
        preds += (logits.squeeze(-1) if regression else logits.argmax(-1)).tolist()
        refs += labels.tolist()
        if bar is not None:
            bar.update(len(chunk))
    return task.compute_metrics(preds, refs)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], settings: dict, max_length: int, batch_size: int, device,
             autocast=contextlib.nullcontext, bar=None) -> list[str]:
    """Greedy/beam decoding of each prompt; returns the generated continuations as text."""
    model.eval()
    budget = max_length - settings["max_new_tokens"]
    rows = [prompt_ids(tokenizer, p, max(1, budget)) for p in prompts]
    out = []
    for chunk in _chunks(rows, batch_size):
        batch = {k: v.to(device) for k, v in left_pad(chunk, tokenizer.pad_token_id).items()}
        with autocast():
            seqs = model.generate(
                **batch, do_sample=False, num_beams=settings["num_beams"],
                length_penalty=settings["length_penalty"],
                no_repeat_ngram_size=settings["no_repeat_ngram_size"] or 0,
                max_new_tokens=settings["max_new_tokens"], eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
        new = seqs[:, batch["input_ids"].shape[1]:]
        out += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
        if bar is not None:
            bar.update(len(chunk))
    return out


def evaluate_generation(model, tokenizer, task, items, settings, max_length, batch_size, device, autocast,
                        bar=None) -> dict:
    preds = generate(model, tokenizer, [it.prompt for it in items], settings, max_length, batch_size, device,
                     autocast, bar)
    return task.compute_metrics(preds, [it.references for it in items])
