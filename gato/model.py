"""The Gato network: embeddings and a decoder-only transformer. Architecture only.

Pre-norm blocks with GEGLU feed-forward and rotary position embeddings. Rotary (relative)
positions replace the paper's learned absolute ones so that a sliding KV cache does not drift:
the attention logits depend only on position differences, so the same tokens give the same
logits however far into the stream they are. (Dropping the oldest cached tokens equals
recomputing the window from scratch only for one layer: deeper cached keys still carry what the
dropped tokens contributed; tests/test_model.py, docs/design.md.)

The KV cache is passed in and returned, never stored on the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import ModelConfig
from gato.tokenization.images import CHANNELS, PATCH, POSITION_BINS
from gato.tokenization.vocab import Kind


@dataclass
class KVCache:
    """Keys and values of past tokens, per layer, plus which slots hold a real token."""

    keys: list[torch.Tensor]  # per layer (B, H, S, hd), already rotated
    values: list[torch.Tensor]  # per layer (B, H, S, hd)
    valid: torch.Tensor  # (B, S) bool
    next_pos: torch.Tensor  # (B,) long, rotary position of the next token

    @property
    def length(self) -> int:
        return self.valid.shape[1]

    def trim(self, max_len: int) -> "KVCache":
        """Keep the newest `max_len` slots (the sliding window)."""
        if max_len < 0:
            raise ValueError(f"cannot trim a KV cache to {max_len} slots")
        if self.length <= max_len:
            return self
        s = self.length - max_len  # not [-max_len:], which keeps everything for max_len == 0
        return KVCache([k[:, :, s:] for k in self.keys], [v[:, :, s:] for v in self.values],
                       self.valid[:, s:], self.next_pos)


def rotary(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, hd) by angles pos (B, T) * base^(-2i/hd).

    Angles are computed in float64 so positions far beyond the context stay exact."""
    hd = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, hd, 2, device=x.device, dtype=torch.float64) / hd)
    ang = pos.to(torch.float64)[:, None, :, None] * inv_freq  # (B, 1, T, hd/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h, self.hd, self.base = cfg.num_heads, cfg.head_dim, cfg.rope_base
        self.qkv = nn.Linear(cfg.width, 3 * cfg.num_heads * cfg.head_dim, bias=False)
        self.proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.width, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, pos, past=None, mask=None):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        q, k = rotary(q, pos, self.base), rotary(k, pos, self.base)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, S+T, hd)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd)), (k, v)


class GEGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.width, 2 * cfg.mlp_hidden)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x):
        a, gate = self.fc(x).chunk(2, dim=-1)
        return self.proj(a * F.gelu(gate))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.width), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.width), GEGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, pos, past=None, mask=None):
        a, kv = self.attn(self.ln1(x), pos, past, mask)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), kv


class PatchEmbedding(nn.Module):
    """16x16 patch -> width: a strided stem, one ResNet-v2 block (pre-activation, GroupNorm 32,
    GELU) on the 4x4 grid, and a linear map of the flattened grid."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.patch_channels
        self.stem = nn.Conv2d(CHANNELS, c, kernel_size=4, stride=4)  # (N, c, 4, 4)
        self.norm1, self.conv1 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Linear(c * (PATCH // 4) ** 2, cfg.width)

    def forward(self, patches):  # (N, 16, 16, 3)
        h = self.stem(patches.permute(0, 3, 1, 2))
        r = self.conv1(F.gelu(self.norm1(h)))
        h = h + self.conv2(F.gelu(self.norm2(r)))
        return self.out(h.flatten(1))  # (N, width)


class Gato(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)  # also the output head (tied)
        self.patch = PatchEmbedding(cfg)
        self.patch_row = nn.Embedding(POSITION_BINS, cfg.width)
        self.patch_col = nn.Embedding(POSITION_BINS, cfg.width)
        self.local_pos = nn.Embedding(cfg.max_local_positions, cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.num_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding, nn.Conv2d)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed_inputs(self, ids, kinds, local_pos, patches=None, patch_pos=None):
        """(B, T) ids/kinds/local positions + (N, 16, 16, 3) patches -> (B, T, width)."""
        x = self.embed(ids.clamp(min=0))
        is_image = kinds == Kind.IMAGE
        num_patches = 0 if patches is None else patches.shape[0]
        num_image = int(is_image.sum())
        if num_patches != num_image:
            raise ValueError(f"{num_patches} image patches given for {num_image} IMAGE positions "
                             f"(kinds == {int(Kind.IMAGE)}); they must match one to one, in row-major order")
        if num_patches or (self.training and patches is not None):
            # In training even zero patches go through (zero gradients), so every parameter gets a
            # gradient on every rank and DDP / FSDP2 reduce the same tensors everywhere.
            pp = patch_pos.long()  # (N, 4): row_lo, row_hi, col_lo, col_hi
            if self.training:  # a random index of the patch's interval
                u = torch.rand(pp.shape[0], 2, device=pp.device)
                row = pp[:, 0] + (u[:, 0] * (pp[:, 1] - pp[:, 0])).long()
                col = pp[:, 2] + (u[:, 1] * (pp[:, 3] - pp[:, 2])).long()
            else:  # the rounded mean
                row, col = (pp[:, 0] + pp[:, 1]) // 2, (pp[:, 2] + pp[:, 3]) // 2
            img = self.patch(patches.to(x.dtype)) + self.patch_row(row) + self.patch_col(col)
            x = x.masked_scatter(is_image[..., None], img.to(x.dtype))
        has_local = local_pos >= 0
        x = x + self.local_pos(local_pos.clamp(min=0)) * has_local[..., None].to(x.dtype)
        return self.drop(x)

    def forward(self, ids, kinds, local_pos, patches=None, patch_pos=None,
                cache: KVCache | None = None, use_cache: bool = False,
                logits_at: torch.Tensor | None = None, valid: torch.Tensor | None = None):
        """Logits (B, T, vocab) for the next token at every position, and the new cache
        (None unless `cache` is given or `use_cache`). Image positions (kinds == IMAGE) take
        their embeddings from `patches` in row-major order of the (B, T) grid. With
        `logits_at` (B, T) bool, only those positions' logits are computed: (N, vocab).
        `valid` (B, T) bool marks real tokens when rows are padded (acting on several
        environments at once): padding gets no rotary position and no one attends to it."""
        B, T = ids.shape
        dev = ids.device
        x = self.embed_inputs(ids, kinds, local_pos, patches, patch_pos)
        if cache is None and valid is None:  # training: one causal block, flash-attention friendly
            pos = torch.arange(T, device=dev).expand(B, T)
            mask, pasts = None, [None] * len(self.blocks)
            start = torch.zeros(B, dtype=torch.long, device=dev)
        else:
            valid = torch.ones(B, T, dtype=torch.bool, device=dev) if valid is None else valid
            start = cache.next_pos if cache is not None else torch.zeros(B, dtype=torch.long, device=dev)
            pos = start[:, None] + (valid.long().cumsum(1) - 1).clamp(min=0)
            causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
            new = (causal & valid[:, None, :]) | torch.eye(T, dtype=torch.bool, device=dev)  # (B, T, T)
            old = cache.valid[:, None, :].expand(B, T, -1) if cache is not None else new[:, :, :0]
            mask = torch.cat([old, new], dim=2)[:, None]  # (B, 1, T, S+T)
            pasts = list(zip(cache.keys, cache.values)) if cache is not None else [None] * len(self.blocks)
        keys, values = [], []
        for block, past in zip(self.blocks, pasts):
            x, (k, v) = block(x, pos, past, mask)
            keys.append(k)
            values.append(v)
        if logits_at is not None:
            x = x[logits_at]  # (N, width)
        logits = F.linear(self.ln_f(x), self.embed.weight)
        if cache is None and not use_cache:
            return logits, None
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=dev)
        all_valid = valid if cache is None else torch.cat([cache.valid, valid], dim=1)
        return logits, KVCache(keys, values, all_valid, start + valid.long().sum(1))
