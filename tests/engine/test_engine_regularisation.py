"""Label smoothing, mixup, gradient clipping and early stopping, on the engine's own training loop."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import OneCycleLR

from fineserve_common.events import Epoch, Event, Log
from worker.engine import FineTuneConfig, fine_tune
from worker.engine.early_stopping import EarlyStopping
from worker.engine.precision import grad_scaler
from worker.engine.regularisation import mixup
from worker.engine.train_loop import LoopSettings, train_epoch, validate

from .synthetic_images import TINY

CPU = torch.device("cpu")


def toy_problem(seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A linear classifier on random 3x2x2 'images': deterministic (no dropout, no BatchNorm) and instant."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = [(torch.randn(8, 3, 2, 2) * 5, torch.randint(0, 3, (8,))) for _ in range(4)]
    return model, batches


def run_epoch(model: nn.Module, batches: list, settings: LoopSettings) -> tuple[list[Event], list[float]]:
    """train_epoch with AdamW + 1cycle; returns its batch events and the gradient norm each step saw."""
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = OneCycleLR(opt, max_lr=0.1, total_steps=len(batches))
    norms: list[float] = []

    def record_norm(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    opt.register_step_pre_hook(record_norm)
    events: list[Event] = []
    train_epoch(model, batches, opt, sched, grad_scaler(CPU, "fp32"), settings, on_event=events.append)
    return events, norms


def test_label_smoothing_is_in_the_training_loss_only() -> None:
    model, batches = toy_problem()
    initial = copy.deepcopy(model)
    x, y = batches[0]
    events, _ = run_epoch(model, batches, LoopSettings(CPU, label_smoothing=0.2))
    with torch.no_grad():
        smoothed = F.cross_entropy(initial(x), y, label_smoothing=0.2).item()
        plain = F.cross_entropy(initial(x), y).item()
    assert events[0].loss == pytest.approx(smoothed, rel=1e-6) and smoothed != pytest.approx(plain, rel=1e-3)
    valid_loss, _ = validate(model, batches, LoopSettings(CPU, label_smoothing=0.2))
    with torch.no_grad():
        unsmoothed = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in batches) / 32
    assert valid_loss == pytest.approx(unsmoothed, rel=1e-6)


def test_mixup_blends_inputs_and_weights_the_two_targets() -> None:
    torch.manual_seed(5)
    x, y = torch.randn(6, 3, 2, 2), torch.arange(6)
    mixed, y_b, lam = mixup(x, y, 0.4)
    assert 0 <= lam <= 1 and sorted(y_b.tolist()) == list(range(6))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[y_b], atol=1e-6)

    model, batches = toy_problem()
    initial = copy.deepcopy(model)
    torch.manual_seed(7)
    events, _ = run_epoch(model, batches, LoopSettings(CPU, mixup_alpha=0.4))
    torch.manual_seed(7)  # replay the loop's draws for its first batch
    x_mixed, y_b, lam = mixup(*batches[0], 0.4)
    with torch.no_grad():
        logits = initial(x_mixed)
        expected = lam * F.cross_entropy(logits, batches[0][1]) + (1 - lam) * F.cross_entropy(logits, y_b)
    assert events[0].loss == pytest.approx(expected.item(), rel=1e-6)
    assert validate(model, batches, LoopSettings(CPU, mixup_alpha=0.4)) == validate(model, batches, LoopSettings(CPU))


def test_grad_clipping_bounds_the_norm_the_optimizer_sees() -> None:
    model, batches = toy_problem()
    _, unclipped = run_epoch(copy.deepcopy(model), batches, LoopSettings(CPU))
    events, clipped = run_epoch(model, batches, LoopSettings(CPU, grad_clip=0.05))
    assert min(unclipped) > 0.05
    assert len(clipped) == 4 and max(clipped) <= 0.05 * (1 + 1e-5)
    assert all(e.loss > 0 for e in events)


def test_early_stopping_counts_epochs_without_improvement() -> None:
    stop = EarlyStopping("valid_loss", patience=2, min_delta=0.01)
    assert [stop.update({"valid_loss": v}) for v in (1.0, 0.95, 0.945, 0.96)] == [False, False, False, True]
    assert stop.state_dict() == {"best": 0.95, "bad_epochs": 2, "stopped": True}
    higher = EarlyStopping("accuracy", patience=1, min_delta=0.0)
    assert [higher.update({"accuracy": v}) for v in (0.5, 0.6, 0.6)] == [False, False, True]
    assert not any(EarlyStopping("", 1, 0.0).update({"accuracy": 0.0}) for _ in range(3))
    restored = EarlyStopping("accuracy", 1, 0.0)
    restored.load_state_dict(higher.state_dict())
    assert restored.stopped and restored.best == 0.6


def test_early_stopping_ends_the_job_and_records_epochs_trained(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = FineTuneConfig(**{**TINY, "epochs": 4, "early_stopping_metric": "accuracy",
                            "early_stopping_patience": 1, "early_stopping_min_delta": 1.0})
    events: list[Event] = []
    result = fine_tune(cfg, tiny_dataset, tmp_path, events.append)
    assert [(e.epoch, e.epochs) for e in events if isinstance(e, Epoch)] == [(1, 4), (2, 4)]
    assert result.epochs_trained == result.card["epochs_trained"] == 2
    assert any(isinstance(e, Log) and e.message.startswith("early stopping after epoch 2") for e in events)
