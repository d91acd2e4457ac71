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

import contextlib
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import ModelConfig
from gato.tokenization.images import CHANNELS, PATCH, POSITION_BINS
from gato.tokenization.vocab import Kind


class KVCache:
    """Keys and values of past tokens per layer, in buffers preallocated for `capacity` slots.

    Slots [0, length) are in use; `valid` marks which of them hold a real token (not padding, not
    a slot of a row that was reset). A forward pass writes its keys and values into the next free
    slots in place, so a step costs its own tokens, not a copy of the whole cache. The cache it
    returns shares the buffers and supersedes the one passed in: extending the old one again
    would overwrite the same slots. Full buffers grow by doubling; callers that know their
    context allocate it up front with `empty`.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], valid: torch.Tensor,
                 next_pos: torch.Tensor, length: int | None = None):
        self.key_buf, self.value_buf = list(keys), list(values)  # per layer (B, H, capacity, hd); keys rotated
        self.valid_buf = valid  # (B, capacity) bool
        self.next_pos = next_pos  # (B,) long, rotary position of the next token
        self.length = valid.shape[1] if length is None else length

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, capacity: int, device=None,
              dtype: torch.dtype = torch.float32) -> "KVCache":
        shape = (batch, cfg.num_heads, capacity, cfg.head_dim)
        return cls([torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)],
                   [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_layers)],
                   torch.zeros(batch, capacity, dtype=torch.bool, device=device),
                   torch.zeros(batch, dtype=torch.long, device=device), length=0)

    @property
    def capacity(self) -> int:
        return self.valid_buf.shape[1]

    @property
    def keys(self) -> list[torch.Tensor]:  # per layer (B, H, length, hd): views of the buffers
        return [k[:, :, :self.length] for k in self.key_buf]

    @property
    def values(self) -> list[torch.Tensor]:
        return [v[:, :, :self.length] for v in self.value_buf]

    @property
    def valid(self) -> torch.Tensor:  # (B, length) bool, a view: writing False masks slots
        return self.valid_buf[:, :self.length]

    def _copy(self, start: int, capacity: int) -> "KVCache":
        """Slots [start, length) moved to the front of new buffers of `capacity` slots."""
        n = self.length - start
        keys = [k.new_zeros(*k.shape[:2], capacity, k.shape[3]) for k in self.key_buf]
        values = [v.new_zeros(*v.shape[:2], capacity, v.shape[3]) for v in self.value_buf]
        valid = self.valid_buf.new_zeros(self.valid_buf.shape[0], capacity)
        for dst, src in zip(keys + values, self.key_buf + self.value_buf):
            dst[:, :, :n] = src[:, :, start:self.length]
        valid[:, :n] = self.valid_buf[:, start:self.length]
        return KVCache(keys, values, valid, self.next_pos, length=n)

    def reserve(self, extra: int) -> "KVCache":
        """This cache, or a copy in larger buffers, with room for `extra` more slots."""
        need = self.length + extra
        return self if need <= self.capacity else self._copy(0, max(need, 2 * self.capacity))

    def cleared(self) -> "KVCache":
        """No slots in use and positions back at 0, in the same buffers (this cache is then stale):
        recomputing a window allocates nothing."""
        return KVCache(self.key_buf, self.value_buf, self.valid_buf, torch.zeros_like(self.next_pos), length=0)

    def trim(self, max_len: int) -> "KVCache":
        """Keep the newest `max_len` slots (the sliding window), in new buffers."""
        if max_len < 0:
            raise ValueError(f"cannot trim a KV cache to {max_len} slots")
        if self.length <= max_len:
            return self
        return self._copy(self.length - max_len, self.capacity)


@contextlib.contextmanager
def _without_onednn():
    """oneDNN off for a one-token step. Its GELU of one row's 1024 values costs about 10 us of
    fixed overhead where PyTorch's own vectorised kernel takes 2: the kernel every forward of
    several tokens or rows already uses (their chunked gate is not contiguous, so never goes to
    oneDNN), so a one-row step now computes GELU as a recomputed window does. float32
    products take the same path either way. Only the one flag changes, and it is restored
    (docs/benchmarks.md)."""
    on = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(on)


def rope(pos: torch.Tensor, head_dim: int, base: float) -> torch.Tensor:
    """The rotations (B, 1, T, hd/2) complex64 of the angles pos (B, T) * base^(-2i/hd), computed
    once per forward for every layer. Angles in float64 so positions far beyond the context stay
    exact."""
    ang = pos.to(torch.float64)[:, None, :, None] * _inv_freq(head_dim, base, pos.device)
    return torch.polar(torch.ones_like(ang), ang).to(torch.complex64)


@functools.cache
def _inv_freq(head_dim: int, base: float, device: torch.device) -> torch.Tensor:
    """base^(-2i/hd), i < hd/2, float64: the same for every forward (never written to)."""
    with torch.inference_mode(False), torch.no_grad():
        return base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim)


def rotary(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x[2i], x[2i+1]) of x (..., B, H, T, hd) by `rope`'s rotations: one
    complex product (x[2i] + i x[2i+1]) * (cos + i sin), in float32."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * turn).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h, self.hd, self.base = cfg.num_heads, cfg.head_dim, cfg.rope_base
        self.qkv = nn.Linear(cfg.width, 3 * cfg.num_heads * cfg.head_dim, bias=False)
        self.proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.width, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, pos, past=None, mask=None, only=None):
        """`pos`: positions (B, T) or their `rope`. `past`: (key buffer, value buffer, n) of a
        KVCache layer: this step's keys and values go to slots [n, n+T), attention reads [0, n+T).
        `only` (B,) long: keys and values of every position, the output at only that one per row
        (B, 1, width) (the last layer when only those logits are wanted; needs `mask`)."""
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        turn = rope(pos, self.hd, self.base) if not pos.is_complex() else pos
        q, k = rotary(qkv[:2], turn)  # queries and keys rotated together
        v = qkv[2]
        if past is not None:
            kb, vb, n = past
            kb[:, :, n:n + T] = k
            vb[:, :, n:n + T] = v
            k, v = kb[:, :, :n + T], vb[:, :, :n + T]  # (B, H, n+T, hd), views
        if only is not None and T > 1:
            rows = torch.arange(B, device=x.device)
            q, mask, T = q[rows, :, only][:, :, None], mask[rows, :, only][:, :, None], 1  # (B, H, 1, hd)
        p = self.dropout if self.training else 0.0
        causal = mask is None and T > 1  # one query with no mask sees every slot
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd)), (k, v)


class GEGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.width, 2 * cfg.mlp_hidden)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x):
        a, gate = self.fc(x).chunk(2, dim=-1)
        return self.proj(a * F.gelu(gate))


def _dropout(p: float) -> nn.Module:
    """No module call at all when there is no dropout (acting pays per call, token by token)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.width), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.width), GEGLU(cfg)
        self.drop = _dropout(cfg.dropout)

    def forward(self, x, pos, past=None, mask=None, only=None):
        a, kv = self.attn(self.ln1(x), pos, past, mask, only)
        if only is not None:  # the residual stream of those positions: (B, 1, width)
            x = x[torch.arange(x.shape[0], device=x.device), only][:, None]
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
        self.drop = _dropout(cfg.dropout)
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
                logits_at: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                vocab: tuple[int, int] | None = None):
        """Logits (B, T, vocab) for the next token at every position, and the new cache
        (None unless `cache` is given or `use_cache`; see KVCache). Image positions (kinds ==
        IMAGE) take their embeddings from `patches` in row-major order of the (B, T) grid.
        `logits_at` computes only some positions' logits: (B, T) bool -> (N, vocab), or (B,)
        long, one position per row -> (B, vocab). `vocab` = (lo, hi) computes only the logits of
        ids [lo, hi) (an agent sampling from a token's valid range). `valid` (B, T) bool marks
        real tokens when rows are padded (acting on several environments at once): padding gets
        no rotary position and no one attends to it."""
        B, T = ids.shape
        dev = ids.device
        x = self.embed_inputs(ids, kinds, local_pos, patches, patch_pos)
        if cache is None and not use_cache:
            if valid is None:  # training: one causal block, flash-attention friendly
                pos, mask = torch.arange(T, device=dev).expand(B, T), None
            else:
                pos, mask = self._positions(valid, torch.zeros(B, dtype=torch.long, device=dev), None, 0)
            turn = rope(pos, self.cfg.head_dim, self.cfg.rope_base)
            for block in self.blocks:
                x, _ = block(x, turn, None, mask)
        else:
            if cache is None:
                cache = KVCache.empty(self.cfg, B, max(T, self.cfg.context), dev, x.dtype)
            cache = cache.reserve(T)
            n = cache.length
            if valid is None:
                valid = torch.ones(B, T, dtype=torch.bool, device=dev)
            cache.valid_buf[:, n:n + T] = valid
            pos, mask = self._positions(valid, cache.next_pos, cache.valid_buf[:, :n + T], n)
            turn = rope(pos, self.cfg.head_dim, self.cfg.rope_base)
            one_per_row = logits_at is not None and logits_at.dtype != torch.bool
            for i, block in enumerate(self.blocks):
                only = logits_at if one_per_row and i == len(self.blocks) - 1 else None
                x, _ = block(x, turn, (cache.key_buf[i], cache.value_buf[i], n), mask, only)
            cache = KVCache(cache.key_buf, cache.value_buf, cache.valid_buf, cache.next_pos + valid.sum(1), n + T)
            if one_per_row:  # the last block computed only those positions
                x, logits_at = x[:, 0], None
        if logits_at is not None:
            x = x[logits_at] if logits_at.dtype == torch.bool else x[torch.arange(B, device=dev), logits_at]
        w = self.embed.weight if vocab is None else self.embed.weight[vocab[0]:vocab[1]]
        return F.linear(self.ln_f(x), w), (cache if use_cache or cache is not None else None)

    def step(self, ids: torch.Tensor, cache: KVCache, vocab: tuple[int, int]) -> tuple[torch.Tensor, KVCache]:
        """One token per row (B,) with no local position (an action or text token) appended to
        `cache`: logits (B, hi - lo) of ids [lo, hi) = `vocab`, and the new cache.

        The same arithmetic as `forward` on one position, written for the token-by-token loop of
        acting and generating, where a step's cost is the number of small ops, not their size:
        no module calls, no masks when every slot is real, rotations read from a table (exactly
        `rope`'s values), keys and values written in place. tests/test_model.py checks it against
        `forward` logit for logit."""
        with _without_onednn():
            return self._step(ids, cache, vocab)

    def _step(self, ids: torch.Tensor, cache: KVCache, vocab: tuple[int, int]) -> tuple[torch.Tensor, KVCache]:
        B, n = ids.shape[0], cache.length
        if n + 1 > cache.capacity:
            cache = cache.reserve(1)
        cache.valid_buf[:, n] = True
        slots = cache.valid_buf[:, :n + 1]
        mask = None if bool(slots.all()) else slots[:, None, None]
        pos = cache.next_pos
        table = self._rope_table(int(pos.max()) + 1, ids.device)
        turn = table[pos][:, None, None]  # (B, 1, 1, hd/2): broadcast over q/k and heads
        H, hd, W = self.cfg.num_heads, self.cfg.head_dim, self.cfg.width
        x = F.embedding(ids, self.embed.weight)  # (B, width)
        for i, blk in enumerate(self.blocks):
            a = blk.attn
            h = F.layer_norm(x, (W,), blk.ln1.weight, blk.ln1.bias, blk.ln1.eps)
            qkv = F.linear(h, a.qkv.weight).view(B, 3, H, hd)
            qk = torch.view_as_real(torch.view_as_complex(qkv[:, :2].float().unflatten(-1, (-1, 2))) * turn)
            qk = qk.flatten(-2).to(x.dtype)  # (B, 2, H, hd) rotated
            kb, vb = cache.key_buf[i], cache.value_buf[i]
            kb[:, :, n] = qk[:, 1]
            vb[:, :, n] = qkv[:, 2]
            y = F.scaled_dot_product_attention(qk[:, 0, :, None], kb[:, :, :n + 1], vb[:, :, :n + 1], attn_mask=mask)
            x = x + F.linear(y.view(B, H * hd), a.proj.weight)
            m = blk.mlp
            h = F.layer_norm(x, (W,), blk.ln2.weight, blk.ln2.bias, blk.ln2.eps)
            u, gate = F.linear(h, m.fc.weight, m.fc.bias).chunk(2, dim=-1)
            x = x + F.linear(u * F.gelu(gate), m.proj.weight, m.proj.bias)
        x = F.layer_norm(x, (W,), self.ln_f.weight, self.ln_f.bias, self.ln_f.eps)
        logits = F.linear(x, self.embed.weight[vocab[0]:vocab[1]])
        return logits, KVCache(cache.key_buf, cache.value_buf, cache.valid_buf, pos + 1, n + 1)

    def _rope_table(self, length: int, device) -> torch.Tensor:
        """`rope` of positions [0, length) (at least the context), (length, hd/2) complex64, kept
        until a longer one is needed."""
        table = getattr(self, "_rope_cache", None)
        if table is None or table.shape[0] < length or table.device != torch.device(device):
            size = max(length, self.cfg.context)
            with torch.inference_mode(False), torch.no_grad():
                table = rope(torch.arange(size, device=device)[None], self.cfg.head_dim, self.cfg.rope_base)[0, 0]
            self._rope_cache = table
        return table

    @staticmethod
    def _positions(valid, start, slots_valid, n):
        """Rotary positions (B, T) of new tokens (padding repeats its row's last position) and the
        attention mask (B, 1, T, n+T): causal, real slots only, and every token sees itself (a
        padding query then never has an empty row). None for one token a row that sees every slot."""
        T, dev = valid.shape[1], valid.device
        if T == 1 and slots_valid is not None:  # one new token a row (acting, generating)
            if bool(slots_valid.all()):  # it sees every slot: no mask, SDPA's fastest path
                return start[:, None].clone(), None
            mask = slots_valid.clone()
            mask[:, n] = True
            return start[:, None].clone(), mask[:, None, None]
        pos = start[:, None] + (valid.long().cumsum(1) - 1).clamp(min=0)
        if slots_valid is None:
            slots_valid = valid
        causal = torch.ones(T, n + T, dtype=torch.bool, device=dev).tril(n)  # slot j <= n + i
        self_slot = torch.zeros(T, n + T, dtype=torch.bool, device=dev)
        self_slot[:, n:] = torch.eye(T, dtype=torch.bool, device=dev)
        return pos, ((causal & slots_valid[:, None, :]) | self_slot)[:, None]
