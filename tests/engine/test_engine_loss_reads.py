"""train_epoch reads losses from the device in groups (READ_EVERY), not step by step, and still reports every
batch's loss in order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fineserve_common.events import Batch as BatchEvent
from worker.engine import train_loop
from worker.engine.train_loop import LoopSettings, train_epoch


def test_losses_are_read_in_groups_after_later_steps_are_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_loop, "READ_EVERY", {"cpu": 4, "cuda": 32})
    steps: list[torch.Tensor] = []
    real_step = train_loop.train_step
    monkeypatch.setattr(train_loop, "train_step", lambda *a: steps.append(real_step(*a)) or steps[-1])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    batches = [(torch.randn(5, 3, 2, 2), torch.randint(0, 3, (5,))) for _ in range(10)]
    seen: list[tuple[int, int]] = []
    losses: list[float] = []

    def on_event(event: object) -> None:
        assert isinstance(event, BatchEvent)
        seen.append((event.batch, len(steps)))
        losses.append(event.loss)

    mean = train_epoch(model, batches, opt, sched, torch.amp.GradScaler("cpu", enabled=False),
                       LoopSettings(torch.device("cpu")), on_event=on_event)
    # batches 1-4 read once the 5th is queued, 5-8 with the 9th, 9-10 at the end
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 9), (6, 9), (7, 9), (8, 9), (9, 10), (10, 10)]
    assert losses == [loss.item() for loss in steps] and mean == pytest.approx(sum(losses) / 10)
