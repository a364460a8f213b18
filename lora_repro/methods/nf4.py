"""4-bit NormalFloat (NF4) with double quantization (Dettmers et al. 2023, QLoRA Sec 3), in plain torch.

A weight is flattened (nn.Linear orientation [d_out, d_in], row-major, as bitsandbytes' Linear4bit stores it) and
cut into blocks of 64; each block is divided by its absolute maximum and every value is rounded to the nearest of
NF4's 16 levels (quantiles of N(0, 1) scaled to [-1, 1], with an exact zero); two 4-bit codes share a byte, the
first in the high nibble. Double quantization then stores the fp32 block maxima as 8-bit codes of bitsandbytes'
signed dynamic map in blocks of 256, after subtracting their mean, with one fp32 maximum per block of 256:

    bits per weight = 4 + 8/64 + 32/(64·256) ≈ 4.127      (without double quantization: 4 + 32/64 = 4.5)

This is the CPU reference: the same levels, block layout, packing and dynamic map as bitsandbytes'
`quantize_4bit(..., quant_type="nf4", compress_statistics=True)`, so its dequantized weights equal bitsandbytes'
(tested on a GPU where bitsandbytes is importable). `nf4_bitsandbytes` uses bitsandbytes' kernels themselves.
The fp32 statistics are stored as their int32 bit patterns, so that `model.to(torch.bfloat16)` cannot round them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

# bitsandbytes' NF4 levels (QLoRA Appendix E), ascending; index = 4-bit code
NF4_LEVELS = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0)
BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)   # what bitsandbytes' kernels accept
DQ_BLOCK = 256                                       # double quantization: blocks of 256 block maxima


def nf4_levels(device=None) -> torch.Tensor:
    return torch.tensor(NF4_LEVELS, dtype=torch.float32, device=device)


@functools.cache
def dynamic_map(max_exponent_bits: int = 7, total_bits: int = 8) -> torch.Tensor:
    """bitsandbytes' signed dynamic 8-bit map (`create_dynamic_map(signed=True)`): a sign, an exponent of up to 7
    bits given in unary and a linear fraction in the remaining bits; 256 sorted values in [-1, 1] with 0 and 1."""
    data: list[float] = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32, device="cpu")
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (2 ** total_bits - len(data))
    data.sort()
    return torch.tensor(data, dtype=torch.float32, device="cpu")


def _nearest(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Index of the nearest level (sorted levels; a value on a midpoint goes to the lower one, as bitsandbytes'
    comparisons `x > midpoint`)."""
    midpoints = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(values.contiguous(), midpoints.to(values.device), right=False)


def _blocks(flat: torch.Tensor, block: int) -> tuple[torch.Tensor, int]:
    """[n] -> [blocks, block], the last one padded with zeros (they change neither max nor codes that are kept)."""
    pad = -flat.numel() % block
    return torch.nn.functional.pad(flat, (0, pad)).view(-1, block), pad


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.float().contiguous().view(torch.int32)


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.float32)


@dataclass
class NF4Weight:
    """A quantized weight: packed codes and its (double-quantized) block maxima, fp32 stored as int32 bits."""
    packed: torch.Tensor          # uint8 [ceil(n / 2)]
    absmax: torch.Tensor          # int32 bits of fp32 [blocks] (no double quantization) or uint8 codes [blocks]
    absmax2: torch.Tensor | None  # int32 bits of fp32 [ceil(blocks / 256)] (double quantization)
    offset: torch.Tensor | None   # int32 bits of the fp32 mean subtracted before double quantization, [1]
    shape: tuple[int, ...]
    block_size: int

    @property
    def double_quant(self) -> bool:
        return self.absmax2 is not None

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"packed": self.packed, "absmax": self.absmax}
        if self.double_quant:
            out.update(absmax2=self.absmax2, offset=self.offset)
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


def quantize_nf4(weight: torch.Tensor, block_size: int = 64, double_quant: bool = True) -> NF4Weight:
    """NF4-quantize `weight` (any float dtype; computed in fp32)."""
    if block_size not in BLOCK_SIZES:
        raise ValueError(f"block_size={block_size!r}; valid block sizes: {BLOCK_SIZES}")
    flat = weight.detach().reshape(-1).float()
    n, dev = flat.numel(), weight.device
    n_blocks = -(-n // block_size)
    if weight.is_meta:   # parameter counting on the meta device: shapes only
        e = lambda k, dt: torch.empty(k, dtype=dt, device=dev)  # noqa: E731
        dq = double_quant
        return NF4Weight(e((n + 1) // 2, torch.uint8), e(n_blocks, torch.uint8 if dq else torch.int32),
                         e(-(-n_blocks // DQ_BLOCK), torch.int32) if dq else None,
                         e(1, torch.int32) if dq else None, tuple(weight.shape), block_size)
    blocks, _ = _blocks(flat, block_size)
    absmax = blocks.abs().amax(dim=1)
    normed = blocks * (1.0 / absmax).nan_to_num(posinf=0.0)[:, None]     # all-zero block: codes of 0
    codes = _nearest(normed, nf4_levels(dev)).reshape(-1)[:n].to(torch.uint8)
    if n % 2:
        codes = torch.cat([codes, codes.new_zeros(1)])
    packed = (codes[0::2] << 4) | codes[1::2]
    if not double_quant:
        return NF4Weight(packed, _bits(absmax), None, None, tuple(weight.shape), block_size)
    offset = absmax.mean()
    centred, _ = _blocks(absmax - offset, DQ_BLOCK)
    absmax2 = centred.abs().amax(dim=1)
    q8 = _nearest(centred * (1.0 / absmax2).nan_to_num(posinf=0.0)[:, None], dynamic_map().to(dev))
    q8 = q8.reshape(-1)[:n_blocks].to(torch.uint8)
    return NF4Weight(packed, q8, _bits(absmax2), _bits(offset.reshape(1)), tuple(weight.shape), block_size)


def block_maxima(q: NF4Weight) -> torch.Tensor:
    """The fp32 block maxima (dequantized from their 8-bit codes under double quantization)."""
    if not q.double_quant:
        return _float(q.absmax)
    absmax2 = _float(q.absmax2).repeat_interleave(DQ_BLOCK)[: q.absmax.numel()]
    return dynamic_map().to(q.absmax.device)[q.absmax.long()] * absmax2 + _float(q.offset)


def dequantize_nf4(q: NF4Weight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The weight the quantized codes stand for: level[code] * block max, in `dtype`."""
    if q.packed.is_meta:
        return torch.empty(q.shape, dtype=dtype, device="meta")
    n = 1
    for s in q.shape:
        n *= s
    codes = torch.stack([q.packed >> 4, q.packed & 0xF], dim=1).reshape(-1)[:n].long()
    values = nf4_levels(q.packed.device)[codes]
    scale = block_maxima(q).repeat_interleave(q.block_size)[:n]
    return (values * scale).to(dtype).reshape(q.shape)


def bits_per_weight(q: NF4Weight) -> float:
    """Storage of the frozen weight, codes and statistics, per weight."""
    n = 1
    for s in q.shape:
        n *= s
    return 8 * q.nbytes() / n


def bitsandbytes_available() -> bool:
    """bitsandbytes importable and a CUDA device present (its 4-bit kernels need one)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # noqa: BLE001 (an install without its CUDA library raises more than ImportError)
        return False
    return torch.cuda.is_available()


def nf4_bitsandbytes(weight: torch.Tensor, block_size: int = 64, double_quant: bool = True):
    """bitsandbytes' own NF4 quantization (on CUDA): (packed, quant_state), as Linear4bit stores a weight."""
    import bitsandbytes.functional as bnbf
    return bnbf.quantize_4bit(weight.detach().cuda(), blocksize=block_size, compress_statistics=double_quant,
                              quant_type="nf4")


def dequantize_bitsandbytes(packed, quant_state) -> torch.Tensor:
    import bitsandbytes.functional as bnbf
    return bnbf.dequantize_4bit(packed, quant_state)
