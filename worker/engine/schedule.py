"""Discriminative learning rates and the 1cycle policy: one AdamW param group per layer group, each with its
own peak rate, driven by torch's OneCycleLR (which also cycles AdamW's beta1 inversely to the rate)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

from fineserve_common.configs import EmbeddingRecipe, FineTuneConfig, Stage, TextConfig

ADAM_BETA2 = 0.99
"""fast.ai's sqr_mom: a shorter memory of squared gradients than torch's 0.999 suits few-epoch fine-tuning."""


OneCycleRecipe = FineTuneConfig | TextConfig | EmbeddingRecipe
"""Every config: the recipe fields AdamW and 1cycle read (lr, weight_decay, pct_start, div_factor,
final_div_factor, moms_max, moms_min)."""
SpreadRecipe = FineTuneConfig | TextConfig
"""The transfer-learning configs: also lr_spread and group_lrs, the discriminative rates across layer groups."""


def even_mults(start: float, stop: float, n: int) -> list[float]:
    """n rates spaced geometrically from start to stop, one per layer group (fast.ai's even_mults)."""
    if n == 1:
        return [stop]
    step = (stop / start) ** (1 / (n - 1))
    return [start * step**i for i in range(n)]


def group_max_lrs(cfg: SpreadRecipe, stage: Stage, n_groups: int) -> list[float]:
    """Peak LR per layer group, earliest first, for a resolved stage.

    Unfrozen stages use cfg.group_lrs when given. Otherwise trainable groups get their place in the geometric
    spread stage.lr/lr_spread .. stage.lr (lr_mult, or its default for the base), and frozen groups (whose
    BatchNorm alone trains) get stage.lr, so the head-only stage trains exactly as fast.ai's frozen phase did in
    the first slice.
    """
    if stage.freeze_to == 0 and cfg.group_lrs:
        return list(cfg.group_lrs)
    spread = even_mults(stage.lr / cfg.lr_spread, stage.lr, n_groups)
    return [stage.lr if i < stage.freeze_to else lr for i, lr in enumerate(spread)]


def make_optimizer(groups: Sequence[nn.Module], cfg: OneCycleRecipe) -> torch.optim.AdamW:
    """One param group per layer group holding its trainable parameters; frozen ones are left out so they get
    neither updates nor weight decay. Fused AdamW is one kernel per group on CPU and GPU alike."""
    param_groups = [{"params": [p for p in group.parameters() if p.requires_grad]} for group in groups]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(cfg.moms_max, ADAM_BETA2),
                             weight_decay=cfg.weight_decay, fused=True)


def stage_optimizer(groups: Sequence[nn.Module], cfg: SpreadRecipe, stage: Stage
                    ) -> tuple[torch.optim.AdamW, list[float]]:
    """A transfer-learning stage's AdamW over its trainable layer groups, and each group's peak rate (for
    one_cycle once the stage's step count is known)."""
    return make_optimizer(groups, cfg), group_max_lrs(cfg, stage, len(groups))


def one_cycle(opt: torch.optim.Optimizer, cfg: OneCycleRecipe, max_lrs: list[float], total_steps: int) -> OneCycleLR:
    """1cycle over total_steps batches: from max/div_factor up to max at pct_start, then cosine down to
    max/(div_factor*final_div_factor), with beta1 going moms_max -> moms_min -> moms_max."""
    pct_start = cfg.pct_start
    if pct_start * total_steps == 1.0:
        # The warm-up ends at step 0 (the peak), where OneCycleLR divides by zero; a hair less warm-up gives the
        # same schedule without the division.
        pct_start *= 1 - 1e-9
    return OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps, pct_start=pct_start,
                      div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor, cycle_momentum=True,
                      base_momentum=cfg.moms_min, max_momentum=cfg.moms_max)
