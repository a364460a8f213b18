"""Prefix-embedding (PreEmbed) and prefix-layer (PreLayer) tuning, as the paper defines them (Sec 5.1).

Both insert l_p "prefix" tokens in front of the input and l_i "infix" tokens after the prompt.
- prefix_embed: the inserted tokens' input embeddings are trainable; |Θ| = d·(l_p + l_i).
- prefix_layer: the inserted tokens' activations are learned at the input of every Transformer
  block, replacing what the layer below computed (the first one replaces the embedding), so
  |Θ| = L·d·(l_p + l_i). (The last block's output at those positions reaches no other token.)

The model is changed in place so that callers pass their usual batches:
- `model.forward` builds `inputs_embeds` with the inserted tokens, extends `attention_mask`
  (and `token_type_ids`) and positions follow the extended sequence.
- Decoder-only (GPT-2): tokens go [prefix, prompt, infix, rest]. The infix goes after the first
  `infix_position[b]` tokens (an optional LongTensor [batch] keyword: the prompt length), by default
  after the last non-padding token. The trainer passes the prompt length (`train.loop.model_inputs`),
  so the infix trains where generation puts it: [prefix, prompt, infix, target]. Logits come back
  for the caller's positions only (same shape as the input): the logit at caller position t is the
  one that predicts token t+1 in the extended sequence, i.e. that of the last infix token when the
  infix follows t. The loss is the usual causal LM loss on the caller's `labels`, so no label
  shifting or -100 padding is needed by callers.
- Encoders (BERT, RoBERTa, DeBERTa-v2): the classifier pools position 0, so CLS stays first and
  the prefix is inserted AFTER the first token: [CLS, prefix, text, infix, pad]. The infix goes
  after the last non-padding token (the end of the text) unless `infix_position` says otherwise.
- Hidden states and attentions in the output keep the extended length.
- GPT-2 generation: `model.generate(input_ids, attention_mask, ...)` puts the prefix first and
  the infix right after the (left-padded) prompt, and returns [input_ids, new tokens] like the
  base model does. A forward call with a non-empty `past_key_values` is refused (the inserted
  tokens would be counted twice); `generate` handles the cache itself.

Deep copies work; pickling a whole prefixed model does not keep the patched forward, so save
the `prefix_tuning.tokens` tensor (the adapter-only checkpoint) and re-apply the method instead.

Initialisation: each inserted token starts from the input embedding of a random vocabulary token
(common practice for prompt tuning); prefix_layer starts every layer from that same embedding.
Parameters live under the body (`transformer.prefix_tuning.tokens`,
`roberta.prefix_tuning.tokens`), so the paper's count includes them and the head stays separate.
"""
from __future__ import annotations

import functools
import inspect
import types
from typing import Any

import torch
from torch import nn

from .arch import base_model, blocks, get_arch
from .base import Method, MethodConfigError, register


class PrefixTokens(nn.Module):
    """The trainable inserted tokens: [n, d] (embed) or [L, n, d] (layer); first l_p are the prefix."""

    def __init__(self, init: torch.Tensor, prefix_len: int, infix_len: int, per_layer: bool):
        super().__init__()
        self.prefix_len, self.infix_len, self.per_layer = prefix_len, infix_len, per_layer
        self.tokens = nn.Parameter(init)
        self.active: tuple[torch.Tensor, int] | None = None  # (inserted positions [B, n], extended length)
        self.passthrough = False                              # inside generate: inputs are already extended

    @property
    def num_inserted(self) -> int:
        return self.prefix_len + self.infix_len

    def extra_repr(self) -> str:
        return f"prefix_len={self.prefix_len}, infix_len={self.infix_len}, per_layer={self.per_layer}"


def _prefix_module(model: nn.Module) -> PrefixTokens:
    return base_model(model).prefix_tuning


def _word_embeddings(model: nn.Module) -> nn.Embedding:
    return base_model(model).get_submodule(get_arch(model).embeddings)


def inserted_positions(model: nn.Module) -> int:
    """Positions a prefix method adds to every sequence (0 without one): the text gets that many fewer,
    so that text + inserted tokens fit the model's positions (Table 4's PreEmbed on SAMSum: 1024 - 264)."""
    body = base_model(model)
    prefix = getattr(body, "prefix_tuning", None) or getattr(body, "prefix_kv", None)  # prefix_tuning.py's
    return int(getattr(prefix, "num_inserted", 0))


def _prefix_at(model: nn.Module) -> int:
    """Where the prefix goes: before everything for decoders, after CLS for encoders."""
    return 0 if get_arch(model).decoder_only else 1


def _last_token_end(mask: torch.Tensor) -> torch.Tensor:
    """Index after the last non-padding token of each row (works for left and right padding)."""
    pos = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return torch.where(mask.bool(), pos, torch.zeros_like(pos)).max(dim=1).values


def _layout(n: int, l_p: int, l_i: int, prefix_at: int, infix_at: torch.Tensor):
    """New indices of the caller's tokens [B, n] and of the inserted tokens [B, l_p + l_i]."""
    t = torch.arange(n, device=infix_at.device)
    after_infix = (t[None, :] >= infix_at[:, None]).long()
    new_t = t[None, :] + l_p * (t[None, :] >= prefix_at).long() + l_i * after_infix
    pre = (prefix_at + torch.arange(l_p, device=t.device))[None, :].expand(len(infix_at), -1)
    inf = (infix_at + l_p)[:, None] + torch.arange(l_i, device=t.device)[None, :]
    return new_t, torch.cat([pre, inf], dim=1)


def _gather_seq(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, j], ...] for a [B, N, ...] tensor."""
    idx = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:])
    return x.gather(1, idx)


def _extend(model: nn.Module, input_ids, inputs_embeds, attention_mask, token_type_ids, infix_position):
    """The extended inputs and the bookkeeping to map outputs back to the caller's positions."""
    prefix = _prefix_module(model)
    l_p, l_i = prefix.prefix_len, prefix.infix_len
    if inputs_embeds is None:
        if input_ids is None:
            raise ValueError("prefix methods need input_ids or inputs_embeds")
        inputs_embeds = _word_embeddings(model)(input_ids)
    b, n, d = inputs_embeds.shape
    device = inputs_embeds.device
    mask = torch.ones(b, n, dtype=torch.long, device=device) if attention_mask is None else attention_mask
    prefix_at = min(_prefix_at(model), n)
    if infix_position is None:
        infix_at = _last_token_end(mask)
    else:
        infix_at = torch.as_tensor(infix_position, device=device).long().reshape(-1)
        if infix_at.shape != (b,) or bool(((infix_at < prefix_at) | (infix_at > n)).any()):
            raise ValueError(f"infix_position must be a LongTensor [batch={b}] with values in [{prefix_at}, {n}] "
                             f"(the number of prompt tokens before the infix); got {infix_position!r}")
    infix_at = infix_at.clamp(min=prefix_at)
    new_t, inserted = _layout(n, l_p, l_i, prefix_at, infix_at)
    order = torch.argsort(torch.cat([new_t, inserted], dim=1), dim=1)

    vectors = prefix.tokens if not prefix.per_layer else torch.zeros_like(prefix.tokens[0]).detach()
    src = torch.cat([inputs_embeds, vectors.to(inputs_embeds.dtype)[None].expand(b, -1, -1)], dim=1)
    out = {"inputs_embeds": _gather_seq(src, order),
           "attention_mask": _gather_seq(torch.cat([mask, mask.new_ones(b, l_p + l_i)], dim=1), order)}
    if token_type_ids is not None:  # inserted tokens take the segment of the token before them
        tt_pre = token_type_ids[:, max(prefix_at - 1, 0)][:, None].expand(-1, l_p)
        tt_inf = token_type_ids.gather(1, (infix_at - 1).clamp(min=0)[:, None]).expand(-1, l_i)
        out["token_type_ids"] = _gather_seq(torch.cat([token_type_ids, tt_pre, tt_inf], dim=1), order)
    # the output position that predicts caller token t+1 (for causal LMs): the last token inserted after t
    t = torch.arange(n, device=device)[None, :]
    predicts_next = new_t + l_p * (t == prefix_at - 1).long() + l_i * (t == (infix_at - 1)[:, None]).long()
    return out, inserted, new_t, predicts_next


def _bind(model: nn.Module, args: tuple, kwargs: dict) -> dict:
    if args:
        names = list(inspect.signature(type(model).forward).parameters)[1:]
        kwargs = {**dict(zip(names, args)), **kwargs}
    return kwargs


def _prefix_forward(self: nn.Module, *args: Any, **kwargs: Any):
    prefix = _prefix_module(self)
    original = type(self).forward
    if prefix.passthrough:
        return original(self, *args, **kwargs)
    kwargs = _bind(self, args, kwargs)
    infix_position = kwargs.pop("infix_position", None)
    past = kwargs.get("past_key_values")
    if past is not None and (not hasattr(past, "get_seq_length") or past.get_seq_length() > 0):
        raise NotImplementedError("prefix methods: forward with a non-empty past_key_values is not supported; "
                                  "use model.generate, which inserts the prefix once")
    if kwargs.get("position_ids") is not None:
        raise ValueError("prefix methods compute positions for the extended sequence; do not pass position_ids")
    extended, inserted, new_t, predicts_next = _extend(
        self, kwargs.pop("input_ids", None), kwargs.pop("inputs_embeds", None), kwargs.pop("attention_mask", None),
        kwargs.pop("token_type_ids", None), infix_position)
    causal = get_arch(self).decoder_only
    labels = kwargs.pop("labels", None) if causal else None
    num_items = kwargs.pop("num_items_in_batch", None) if causal else None
    n_ext = extended["inputs_embeds"].shape[1]
    prefix.active = (inserted, n_ext)
    try:
        out = original(self, **extended, **kwargs)
    finally:
        prefix.active = None
    logits = getattr(out, "logits", None)
    if logits is not None and logits.dim() == 3 and logits.shape[1] == n_ext:
        out["logits"] = _gather_seq(logits, predicts_next if causal else new_t)
        if causal and labels is not None:
            out["loss"] = self.loss_function(logits=out["logits"], labels=labels, vocab_size=self.config.vocab_size,
                                             num_items_in_batch=num_items)
    return out


def _prefix_generate(self: nn.Module, input_ids: torch.Tensor | None = None, attention_mask=None, **kwargs: Any):
    """Generate with the prefix first and the infix after the prompt; returns [input_ids, new tokens]."""
    prefix = _prefix_module(self)
    if input_ids is None:
        input_ids = kwargs.pop("inputs", None)
    if input_ids is None or "inputs_embeds" in kwargs:
        raise ValueError("prefix methods: generate needs input_ids (and builds inputs_embeds itself)")
    if attention_mask is not None and bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("prefix methods: generate needs left padding (the infix goes at the end of every prompt)")
    n = input_ids.shape[1]
    infix_at = torch.full((input_ids.shape[0],), n, dtype=torch.long, device=input_ids.device)
    extended, inserted, _, _ = _extend(self, input_ids, None, attention_mask, None, infix_at)
    prefix.active, prefix.passthrough = (inserted, extended["inputs_embeds"].shape[1]), True
    try:
        out = type(self).generate(self, inputs_embeds=extended["inputs_embeds"],
                                  attention_mask=extended["attention_mask"], **kwargs)
    finally:
        prefix.active, prefix.passthrough = None, False
    expand = lambda seq: torch.cat([input_ids.repeat_interleave(seq.shape[0] // input_ids.shape[0], 0), seq], 1)  # noqa: E731
    if isinstance(out, torch.Tensor):
        return expand(out)
    out.sequences = expand(out.sequences)
    return out


def _replace_block_input(prefix: PrefixTokens, layer: int, block: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook (prefix_layer): the inserted positions get this layer's learned activations."""
    if prefix.active is None:
        return None
    positions, n_ext = prefix.active
    h = args[0] if args else kwargs["hidden_states"]
    if h.shape[1] != n_ext:  # a later generation step: only new tokens flow, the prefix is in the cache
        return None
    if positions.shape[0] != h.shape[0]:  # beams / expanded batch
        positions = positions.repeat_interleave(h.shape[0] // positions.shape[0], dim=0)
    vec = prefix.tokens[layer].to(h.dtype)[None].expand(h.shape[0], -1, -1)
    h = h.scatter(1, positions[..., None].expand(-1, -1, h.shape[-1]), vec)
    if args:
        return (h, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": h}


def _wrapping(impl, original, extra: tuple[str, ...] = ()):
    """A fresh function running `impl` with `original`'s name and signature plus keyword-only `extra`
    parameters (generate and the HF Trainer inspect the forward signature to pick inputs)."""
    def method(self, *args, **kwargs):
        return impl(self, *args, **kwargs)
    functools.update_wrapper(method, original)
    sig = inspect.signature(original)
    params = list(sig.parameters.values())
    var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in extra
               if name not in sig.parameters] + var_kw
    method.__signature__ = sig.replace(parameters=params)
    return method


class _PrefixMethod(Method):
    defaults = {"prefix_len": 8, "infix_len": 8}
    per_layer = False

    def validate(self, model: nn.Module, cfg: dict) -> None:
        for key in ("prefix_len", "infix_len"):
            v = cfg[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise MethodConfigError(f"{self.name}: {key}={v!r} must be an integer >= 0")
        if cfg["prefix_len"] + cfg["infix_len"] <= 0:
            raise MethodConfigError(f"{self.name}: prefix_len={cfg['prefix_len']} and infix_len={cfg['infix_len']}: "
                                    "at least one must be > 0")
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if limit and cfg["prefix_len"] + cfg["infix_len"] >= limit:
            raise MethodConfigError(f"{self.name}: prefix_len + infix_len = {cfg['prefix_len'] + cfg['infix_len']} "
                                    f"leaves no room for text within the model's {limit} positions")
        if hasattr(base_model(model), "prefix_tuning") or hasattr(base_model(model), "prefix_kv"):
            raise MethodConfigError(f"{self.name}: the model already has prefix tokens; apply one prefix method")

    @classmethod
    def paper_param_formula(cls, model: nn.Module, cfg: dict) -> int:
        """|Θ| = d·(l_p + l_i) for prefix_embed, L·d·(l_p + l_i) for prefix_layer."""
        layers = len(blocks(model)) if cls.per_layer else 1
        return layers * _word_embeddings(model).weight.shape[1] * (cfg["prefix_len"] + cfg["infix_len"])

    def apply(self, model: nn.Module, cfg: dict) -> None:
        emb = _word_embeddings(model).weight
        n = cfg["prefix_len"] + cfg["infix_len"]
        ids = torch.randint(0, emb.shape[0], (n,), device="cpu").to(emb.device)
        init = emb.detach()[ids].clone()
        if self.per_layer:
            init = init[None].repeat(len(blocks(model)), 1, 1)
        prefix = PrefixTokens(init, cfg["prefix_len"], cfg["infix_len"], self.per_layer)
        base_model(model).prefix_tuning = prefix
        model.forward = types.MethodType(_wrapping(_prefix_forward, type(model).forward, ("infix_position",)), model)
        if get_arch(model).decoder_only and hasattr(type(model), "generate"):
            model.generate = types.MethodType(_wrapping(_prefix_generate, type(model).generate), model)
        if self.per_layer:
            for i, block in enumerate(blocks(model)):
                block.register_forward_pre_hook(functools.partial(_replace_block_input, prefix, i), with_kwargs=True)


@register
class PrefixEmbed(_PrefixMethod):
    name = "prefix_embed"


@register
class PrefixLayer(_PrefixMethod):
    name = "prefix_layer"
    per_layer = True
