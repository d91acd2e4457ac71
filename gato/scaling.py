"""Planning for size: model FLOPs, memory and hours per preset (docs/scaling.md, `gato scaling`).

Model FLOPs per token follow PaLM's count (Chowdhery et al. 2022, appendix B):
6 x (transformer block parameters) + 6 x (output head, vocab x width, at the share of positions
that are targets: Gato computes logits only there) + 12 x layers x heads x head_dim x context for
attention (not halved for the causal mask). Memory per GPU: 16 bytes per parameter for fp32
weights, gradients and AdamW's two moments (divided by the ranks under FSDP), plus the
activations autograd keeps, counted tensor by tensor for our block (below). These are
estimates; `gato bench memory` measures the presets that fit the machine and prints both.
"""

from __future__ import annotations

import torch

from gato.config import PRESETS, ModelConfig

PAPER_PRESETS = ("gato-79m", "gato-364m", "gato-1.18b")  # Table 5
PAPER_BATCH, PAPER_STEPS = 512, 1_000_000  # sequences of 1024 tokens per step; steps (SPEC)
# Dense bf16 tensor-core peak per GPU (vendor data sheets), matched against the device name.
PEAK_BF16_FLOPS = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device_name: str) -> float | None:
    """The bf16 peak of a GPU by name (e.g. 'NVIDIA H100 80GB HBM3'), or None if not in the table."""
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):  # 'H100 PCIe' before 'H100'
        if key.lower() in device_name.lower():
            return PEAK_BF16_FLOPS[key]
    return None


def param_counts(cfg: ModelConfig) -> tuple[int, int]:
    """(all parameters, transformer block parameters), counted on the meta device (no memory)."""
    from gato.model import Gato

    with torch.device("meta"):
        model = Gato(cfg)
    blocks = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks."))
    return model.num_params(), blocks


def flops_per_token(cfg: ModelConfig, context: int | None = None, target_share: float = 1.0) -> float:
    """Training (forward + backward) model FLOPs per token."""
    T = context or cfg.context
    _, blocks = param_counts(cfg)
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * T
    return 6 * blocks + 6 * cfg.vocab_size * cfg.width * target_share + attention


def mfu(tokens_per_s: float, cfg: ModelConfig, context: int, peak: float, target_share: float = 1.0) -> float:
    """Model FLOPs utilisation of one device: achieved model FLOP/s over its peak."""
    return tokens_per_s * flops_per_token(cfg, context, target_share) / peak


def activation_bytes(cfg: ModelConfig, context: int | None = None, *, bf16: bool = True,
                     checkpointing: bool = False, target_share: float = 1.0, flash: bool = True) -> float:
    """Bytes autograd keeps for one sequence of a training step.

    Per token and layer: the two LayerNorm inputs (fp32 residual stream, 2 x width x 4 bytes);
    in the compute dtype the LayerNorm outputs (2 x width), q/k/v and the rotated q, k
    (5 x heads x head_dim), the attention output (heads x head_dim) and the GEGLU branch, gate,
    GELU output and product (4 x mlp_hidden); one byte per dropout mask (2 x width). Flash
    attention keeps no T x T matrix; without it (`flash=False`: on CPU, attention dropout falls
    back to the math kernel) each head keeps the fp32 scores, probabilities, dropout mask and
    dropped probabilities of T x T pairs (13 bytes each). With activation checkpointing only each
    block's input is kept, plus one block's worth while it is recomputed. The head keeps bf16 and
    fp32 logits and their gradient at the target positions."""
    T = context or cfg.context
    h, a, m = cfg.width, cfg.num_heads * cfg.head_dim, cfg.mlp_hidden
    c = 2 if bf16 else 4
    per_layer = 8 * h + c * (2 * h + 6 * a + 4 * m) + (2 * h if cfg.dropout > 0 else 0)
    if not flash:
        per_layer += 13 * cfg.num_heads * T  # per token: its row of the T x T matrices
    layers = 4 * h * cfg.num_layers + per_layer if checkpointing else per_layer * cfg.num_layers
    head = target_share * cfg.vocab_size * (c + 4 + 4)
    return T * (layers + head + 3 * 4 * h)  # + the embeddings' sum (fp32)


def state_bytes(cfg: ModelConfig, ranks: int = 1, fsdp: bool = False) -> float:
    """fp32 weights, gradients and AdamW moments per GPU (16 bytes per parameter, sharded under FSDP)."""
    n, blocks = param_counts(cfg)
    if not fsdp:
        return 16 * n
    gathered = 2 * 2 * blocks / cfg.num_layers  # two bf16 blocks unsharded at a time (prefetch)
    return 16 * n / ranks + gathered


def acting_bytes(cfg: ModelConfig, envs: int = 1, bf16: bool = False) -> float:
    """Weights plus a full-context KV cache (keys and values of every layer) for `envs` rows."""
    n, _ = param_counts(cfg)
    c = 2 if bf16 else 4
    return c * n + envs * 2 * cfg.num_layers * cfg.context * cfg.num_heads * cfg.head_dim * c


def plan(gpu: str = "H100", mfu_assumed: float = 0.4, gpus: tuple[int, ...] = (8, 64, 256),
         memory_gb: float = 80.0, target_share: float = 0.5) -> list[dict]:
    """One row per preset: tokens, memory per GPU, micro-batch that fits, and hours on each GPU count."""
    peak = peak_flops(gpu)
    if peak is None:
        raise ValueError(f"no bf16 peak known for GPU {gpu!r}; known: {', '.join(PEAK_BF16_FLOPS)}")
    tokens = PAPER_BATCH * 1024 * PAPER_STEPS
    rows = []
    for name in PAPER_PRESETS:  # the CPU presets (mini, tiny, small) are not for the paper's budget
        cfg = PRESETS[name]
        fsdp = name in ("gato-364m", "gato-1.18b")
        n, _ = param_counts(cfg)
        f = flops_per_token(cfg, 1024, target_share)
        act = activation_bytes(cfg, 1024, checkpointing=fsdp, target_share=target_share)
        row = {"preset": name, "params": n, "flops_per_token": f, "tokens": tokens,
               "parallel": "fsdp" if fsdp else "ddp", "activation_checkpointing": fsdp,
               "activation_gb_per_sequence": act / 1e9, "per_gpu": {}}
        for g in gpus:
            state = state_bytes(cfg, g, fsdp)
            per_gpu_rows = PAPER_BATCH // g
            fits = int(max(0.0, memory_gb * 1e9 * 0.9 - state) // act)  # 10% for the allocator, buffers
            micro = max((d for d in range(1, per_gpu_rows + 1) if per_gpu_rows % d == 0 and d <= fits), default=0)
            hours = tokens * f / (g * peak * mfu_assumed) / 3600
            row["per_gpu"][g] = {"state_gb": state / 1e9, "rows_per_step": per_gpu_rows, "micro_batch": micro,
                                 "grad_accum": per_gpu_rows // micro if micro else None, "hours": hours,
                                 "tokens_per_s_per_gpu": peak * mfu_assumed / f}
        rows.append(row)
    return rows


def markdown(rows: list[dict], gpu: str, mfu_assumed: float, source: str) -> str:
    lines = [f"Paper scale: {PAPER_BATCH} x 1024 tokens per step, {PAPER_STEPS:,} steps "
             f"({rows[0]['tokens']:.3g} tokens); {gpu} at {mfu_assumed:.0%} MFU ({source}).", "",
             "| preset | params | model FLOPs/token | GPUs | parallel | act. ckpt | state/GPU | activations/sequence "
             "| micro-batch x accum | tokens/s/GPU | hours | days |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for g, p in r["per_gpu"].items():
            fit = f"{p['micro_batch']} x {p['grad_accum']}" if p["micro_batch"] else "does not fit"
            lines.append(f"| {r['preset']} | {r['params'] / 1e6:.0f}M | {r['flops_per_token'] / 1e9:.2f} G | {g} | "
                         f"{r['parallel']} | {'on' if r['activation_checkpointing'] else 'off'} | "
                         f"{p['state_gb']:.2f} GB | {r['activation_gb_per_sequence']:.2f} GB | {fit} | "
                         f"{p['tokens_per_s_per_gpu']:,.0f} | {p['hours']:,.1f} | {p['hours'] / 24:,.1f} |")
    return "\n".join(lines)
