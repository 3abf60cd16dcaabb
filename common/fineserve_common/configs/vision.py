"""The image tasks' config (classification, multi-label, segmentation): fast.ai's transfer-learning recipe."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bounds import BOUNDS, check, check_choice
from ..tasks import IMAGE_CLASSIFICATION, RESNET_GROUPS, RESNETS, SEGMENTATION, VISION, family_tasks
from .recipe import (
    BaseWeights,
    OneCycle,
    Stage,
    as_dict,
    check_bool,
    check_fields,
    check_run,
    check_stages,
    check_str,
    check_total_epochs,
    fail,
    recipe_fields,
)

DEFAULT_BATCH = {"cpu": 32, "cuda": 128}
"""The batch a job runs when batch_size is unset, by device type: 128 is where a well-set ResNet-50 loop at 224 px
reaches most of an H200's rate (batch 256 gained 10 % more in the measurement of issue 20); a CPU gains nothing
from more than 32."""

IMAGE_TASKS = tuple(t.name for t in family_tasks(VISION))
"""Every image task shares the ResNet body, so any of their stored models can be another's base."""


@dataclass(frozen=True)
class FineTuneConfig(OneCycle):
    """Hyperparameters of fast.ai's transfer-learning recipe; the defaults suit a pretrained ResNet at 224 px."""

    task: str = IMAGE_CLASSIFICATION
    """image_classification (one class per image, image-folders layout: ResNet + head, softmax + cross-entropy),
    multi_label_classification (any number of labels per image, labels-CSV layout: sigmoid + binary cross-entropy
    per label) or segmentation (image masks, U-Net, pixel-wise cross-entropy)."""
    arch: str = "resnet18"
    """Backbone: resnet18, resnet34 or resnet50 (the U-Net's encoder for segmentation)."""
    base: BaseWeights = field(default_factory=lambda: BaseWeights("torchvision"))
    """Pretrained weights of the body."""
    image_size: int = 224
    """Side of the square crops fed to the network (stages may override it); for segmentation the longer side,
    the other one following the data set's aspect ratio."""
    batch_size: int | None = None
    """Training batch size, global across data-parallel workers (>= 2: the head's BatchNorm needs two samples).
    None = by the device (batch_for): DEFAULT_BATCH, halved until the largest stage fits pixels_per_batch."""
    freeze_epochs: int = 1
    """Epochs training only the new head (and BatchNorm); skipped when base.kind is "none". Unused with stages."""
    epochs: int = 3
    """Epochs after unfreezing, with discriminative learning rates. Unused with stages."""
    lr: float = 2e-3
    """Top learning rate: stages with frozen groups peak at lr, unfrozen ones at lr/2 for the head group (lr
    itself on a random body, which has no head-only stage before; unless a stage sets its own). With auto_lr it
    is replaced by the LR range test's suggestion."""
    lr_mult: float | None = None
    """Ratio between the head's and the first group's rate: group i peaks at a geometric spread from
    stage_lr/lr_mult (first group) to stage_lr (head), fast.ai's slice(stage_lr/lr_mult, stage_lr). None = by the
    base (lr_spread): 100 for pretrained weights, 1 for a random body, which has no general features to protect."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    group_lrs: tuple[float, ...] = ()
    """Explicit max LR per layer group (earliest first, one per group: 3 for ResNets) for stages with
    freeze_to 0, replacing the lr/lr_mult spread there; () = the spread."""
    stages: tuple[Stage, ...] = ()
    """The schedule, each stage one 1cycle; () = fast.ai's fine_tune: freeze_epochs with only the head group
    trainable, then epochs with everything unfrozen."""
    label_smoothing: float = 0.0
    """Label smoothing of the training cross-entropy (0 = off; fast.ai's usual value is 0.1)."""
    mixup_alpha: float = 0.0
    """Mixup: pairs of training images blended with a Beta(alpha, alpha) weight per batch (0 = off; 0.4 is
    typical)."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off)."""
    early_stopping_metric: str = ""
    """"valid_loss" (lower is better) or "accuracy" (higher is better) ends training when it stops improving;
    "" = off."""
    early_stopping_patience: int = 3
    """Epochs without an improvement of more than early_stopping_min_delta before training stops."""
    early_stopping_min_delta: float = 0.0
    """Smallest change of the metric that counts as an improvement."""
    auto_lr: bool = False
    """Run the LR range test first (find_lr's range over at most an epoch's batches, at least 16) and use its
    "valley" suggestion as lr ("minimum_div_10" on a random body); stages with their own lr and group_lrs keep
    their rates."""
    precision: str = "auto"
    """auto (bf16 where the device supports it, else fp16 with loss scaling on GPU, else fp32), fp32, bf16 or
    fp16 (GPU only)."""
    valid_pct: float = 0.2
    """Share of images held out for validation when the data set has no valid/ (or val/) split."""
    seed: int = 0
    """Seed of initialisation, the split, shuffling (seed and epoch give each epoch's order) and augmentation."""
    flip: bool = True
    """Random horizontal flips while training (turn off for images whose handedness matters)."""
    min_scale: float = 0.75
    """Classification: the random-resized crop's smallest share of the image's area (1 = no crop). The
    augmentations here (config-level: the API has no fields for them yet) run per batch on the training device,
    with fast.ai's aug_transforms defaults."""
    max_rotate: float = 10.0
    """Largest random rotation, in degrees either way."""
    max_zoom: float = 1.1
    """Largest random zoom in (1 = none)."""
    max_warp: float = 0.2
    """Largest random perspective warp (0 = none)."""
    max_lighting: float = 0.2
    """Largest random change of brightness and contrast (0 = none)."""
    p_affine: float = 0.75
    """Chance of each of rotate, zoom and warp, per image."""
    p_lighting: float = 0.75
    """Chance of each of brightness and contrast, per image."""
    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    num_workers: int = 0
    """DataLoader worker processes (0 decodes in the training process)."""
    threshold: float = 0.5
    """Multi-label: the score over which a label counts as predicted in the epoch metrics (accuracy and F-beta
    at threshold). The saved model also carries per-label thresholds tuned on the validation set."""
    fbeta_beta: float = 2.0
    """Multi-label: beta of the F-beta metric and of the threshold tuning (2 weighs recall over precision, as
    the Planet competition did)."""
    void_code: str | None = None
    """Segmentation: the class of codes.txt whose pixels are ignored; None = "Void" when there is one, "" = none."""

    def __post_init__(self) -> None:
        # Python callers may pass lists; tuples keep the config hashable and equal to its from_dict copy.
        object.__setattr__(self, "group_lrs", tuple(self.group_lrs))
        object.__setattr__(self, "stages", tuple(self.stages))
        self.validate()

    def validate(self) -> None:
        """Raise InvalidArgument (a ValueError) naming the first bad field."""
        check_choice("task", self.task, IMAGE_TASKS)
        check_choice("arch", self.arch, RESNETS)
        if not isinstance(self.base, BaseWeights):
            fail("base", "must be a BaseWeights", self.base)
        check_fields(self, ("image_size", "freeze_epochs", "epochs"))
        if self.batch_size is not None:
            check("batch_size", self.batch_size)
        if not self.stages:
            if self.base.kind == "none" and self.epochs < 1:
                fail("epochs", "must be >= 1 when base.kind is 'none' (a random body has to train)", self.epochs)
            if self.freeze_epochs + self.epochs < 1:
                fail("epochs", "freeze_epochs + epochs must be >= 1", self.epochs)
        check_fields(self, ("lr", "weight_decay"))
        if self.lr_mult is not None:
            check("lr_mult", self.lr_mult)
        self.check_one_cycle()
        self._validate_schedule()
        check_fields(self, ("label_smoothing", "mixup_alpha", "grad_clip"))
        check_run(self)
        check_bool("flip", self.flip)
        check_fields(self, ("min_scale", "max_rotate", "max_zoom", "max_warp", "max_lighting", "p_affine",
                            "p_lighting"))
        check_fields(self, ("num_workers", "threshold", "fbeta_beta"))
        if self.void_code is not None:
            check_str("void_code", self.void_code)
            if self.task != SEGMENTATION:
                fail("void_code", "applies to segmentation only", self.void_code)

    def _validate_schedule(self) -> None:
        if self.group_lrs and len(self.group_lrs) != RESNET_GROUPS:
            fail("group_lrs", f"needs one rate per layer group ({RESNET_GROUPS}), earliest first", self.group_lrs)
        for i, lr in enumerate(self.group_lrs):
            check(f"group_lrs[{i}]", lr, bound="group_lr")
        check_stages(self.stages, RESNET_GROUPS)
        for i, stage in enumerate(self.stages):
            if stage.lr and stage.freeze_to == 0 and self.group_lrs:
                fail(f"stages[{i}].lr", "must be 0 when group_lrs is set (group_lrs set unfrozen stages' rates)",
                     stage.lr)
        check_total_epochs(self.resolved_stages())
        if self.batch_size is not None:
            largest = self.largest_image_size()
            check(f"batch_size x image_size^2 ({self.batch_size} x {largest}^2, the largest stage)",
                  self.batch_size * largest**2, bound="pixels_per_batch")

    def largest_image_size(self) -> int:
        return max(s.image_size for s in self.resolved_stages())

    def batch_for(self, device_type: str) -> int:
        """The batch a job on this device type runs: batch_size when set, else the device's default (the CPU's
        for any device but CUDA), halved while the largest stage's batch would exceed pixels_per_batch."""
        if self.batch_size is not None:
            return self.batch_size
        batch, largest = DEFAULT_BATCH.get(device_type, DEFAULT_BATCH["cpu"]), self.largest_image_size()
        while batch > 2 and batch * largest**2 > BOUNDS["pixels_per_batch"].high:
            batch //= 2
        return batch

    @property
    def effective_freeze_epochs(self) -> int:
        """A random body must train from the start, so "none" skips the head-only phase."""
        return 0 if self.base.kind == "none" else self.freeze_epochs

    def resolved_stages(self) -> tuple[Stage, ...]:
        """The schedule as it runs: derived from freeze_epochs/epochs when stages is empty, with every stage's
        image_size and head-group lr filled in by the default rules."""
        stages = self.stages or tuple(
            Stage(epochs, freeze_to) for epochs, freeze_to in
            ((self.effective_freeze_epochs, RESNET_GROUPS - 1), (self.epochs, 0)) if epochs)
        return tuple(dataclasses.replace(s, image_size=s.image_size or self.image_size, lr=s.lr or self._default_lr(s))
                     for s in stages)

    def _default_lr(self, stage: Stage) -> float:
        if stage.freeze_to:
            return self.lr
        if self.group_lrs:
            return self.group_lrs[-1]
        return self.lr if self.base.kind == "none" else self.lr / 2

    @property
    def lr_spread(self) -> float:
        """The lr_mult in effect: the caller's, else 100 on pretrained weights (fast.ai's fine_tune) and 1 on a
        random body, whose early layers learn from nothing and gain nothing from a 100x slower rate."""
        if self.lr_mult is not None:
            return self.lr_mult
        return 1.0 if self.base.kind == "none" else 100.0

    def applied_defaults(self) -> str:
        """What the defaults chose for this base and why, for the job's log ("" when the base is pretrained)."""
        if self.base.kind != "none":
            return ""
        chosen = [] if self.stages else ["no head-only stage"]
        if self.lr_mult is None:
            chosen.append("lr_mult 1 (one rate for every layer group)")
        chosen.append("unfrozen stages peak at lr, not lr/2")
        return ("random-initialised body: " + ", ".join(chosen) + "; those defaults protect pretrained features, "
                "which a random body does not have (set stages or lr_mult to choose otherwise)")

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FineTuneConfig:
        return cls(**recipe_fields(cls, data))
