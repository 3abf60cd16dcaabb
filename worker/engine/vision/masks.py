"""The "image masks" data set layout (fast.ai's CamVid): images/, labels/ with one class-index mask per image,
codes.txt naming the classes (line i = pixel value i), and optionally valid.txt listing validation images.

The mask of images/<stem>.<ext> is labels/<stem>_P.png (CamVid's rule) or else labels/<stem>.png. Masks are
8-bit single-channel PNGs (grey or palette) whose pixel values index codes.txt. One class may be void: its
pixels count in no loss or metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from ..errors import DatasetError, InvalidImage
from ..images import check_image, decode_image, is_image_path
from ..train_loop import IGNORE_INDEX
from .folders import random_split

CODES_FILE = "codes.txt"
VALID_FILE = "valid.txt"
MASK_SUFFIXES = ("_P", "")
"""Tried in this order: labels/<stem><suffix>.png."""
DEFAULT_VOID = "Void"
MASK_MODES = ("L", "P")
Pair = tuple[Path, Path]


@dataclass(frozen=True)
class MaskedImages:
    """A scanned data set: class names (codes), the void class's index if any, (image, mask) pairs per split,
    skipped unreadable files, and (height, width) of the first training image, which sets the aspect ratio."""

    classes: list[str]
    void_index: int | None
    train: list[Pair]
    valid: list[Pair]
    skipped: list[Path]
    image_hw: tuple[int, int]


def read_codes(root: Path) -> list[str]:
    path = root / CODES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read the class codes {path}: {e}") from e
    while lines and not lines[-1].strip():
        lines.pop()
    codes = [line.strip() for line in lines]
    if "" in codes:
        raise DatasetError(f"{path} line {codes.index('') + 1} is empty: every line up to the last names a class")
    if len(set(codes)) != len(codes):
        raise DatasetError(f"{path} names a class twice")
    if not 2 <= len(codes) <= 256:
        raise DatasetError(f"{path} must name 2 to 256 classes (8-bit masks), found {len(codes)}")
    return codes


def void_index(codes: list[str], void_code: str | None) -> int | None:
    """None = "Void" when codes.txt has it; "" = no void class; a name must be one of the codes."""
    if void_code is None:
        return codes.index(DEFAULT_VOID) if DEFAULT_VOID in codes else None
    if not void_code:
        return None
    if void_code not in codes:
        raise DatasetError(f"void_code {void_code!r} is not a class of {CODES_FILE} ({', '.join(codes[:8])}, ...)")
    return codes.index(void_code)


def mask_path(labels: Path, image: Path) -> Path | None:
    return next((p for s in MASK_SUFFIXES if (p := labels / f"{image.stem}{s}.png").is_file()), None)


def _size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; InvalidImage or OSError when unreadable."""
    check_image(path.read_bytes())
    with Image.open(path) as image:
        return image.size


def _pairs(root: Path, skipped: list[Path]) -> list[Pair]:
    images_dir, labels_dir = root / "images", root / "labels"
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise DatasetError(f"{d} not found: the layout is images/, labels/ and {CODES_FILE}")
    pairs = []
    for image in sorted(p for p in images_dir.iterdir() if is_image_path(p)):
        mask = mask_path(labels_dir, image)
        if mask is None:
            raise DatasetError(
                f"no mask for {image.name}: expected labels/{image.stem}_P.png or labels/{image.stem}.png"
            )
        try:
            image_size, mask_size = _size(image), _size(mask)
        except (InvalidImage, OSError):
            skipped.append(image)
            continue
        if image_size != mask_size:
            raise DatasetError(
                f"{mask.name} is {mask_size[0]}x{mask_size[1]} but {image.name} is "
                f"{image_size[0]}x{image_size[1]}: a mask must match its image"
            )
        pairs.append((image, mask))
    return pairs


def _valid_names(root: Path) -> set[str] | None:
    path = root / VALID_FILE
    if not path.is_file():
        return None
    return {Path(line.strip()).name for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def scan_image_masks(root: str | Path, valid_pct: float, seed: int, void_code: str | None) -> MaskedImages:
    """Pair images with masks; split by valid.txt (image file names) when present, else at random by
    valid_pct with the seed. Pixel values are checked as masks are read (MaskedImageDataset)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set directory not found: {root}")
    codes = read_codes(root)
    void = void_index(codes, void_code)
    skipped: list[Path] = []
    pairs = _pairs(root, skipped)
    names = _valid_names(root)
    if names is None:
        train, valid = random_split(pairs, valid_pct, seed)
    else:
        unknown = sorted(names - {image.name for image, _ in pairs} - {p.name for p in skipped})
        if unknown:
            raise DatasetError(f"{VALID_FILE} names images that images/ lacks: {', '.join(unknown[:5])}")
        train = [p for p in pairs if p[0].name not in names]
        valid = [p for p in pairs if p[0].name in names]
        if not valid:
            raise DatasetError(f"{VALID_FILE} names no readable image")
    if len(train) < 2:
        raise DatasetError(f"need at least 2 training images with masks, found {len(train)}")
    width, height = _size(train[0][0])
    return MaskedImages(codes, void, train, valid, skipped, (height, width))


def input_hw(image_hw: Sequence[int], image_size: int) -> tuple[int, int]:
    """The network's input (height, width): the data set's aspect ratio with the longer side image_size."""
    height, width = image_hw
    if width >= height:
        return max(1, round(image_size * height / width)), image_size
    return image_size, max(1, round(image_size * width / height))


def read_mask(path: Path, n_classes: int, void: int | None) -> torch.Tensor:
    """(H, W) int64 class indices, void pixels as IGNORE_INDEX; DatasetError for a mask the codes cannot read."""
    try:
        with Image.open(path) as image:
            if image.mode not in MASK_MODES:
                raise DatasetError(
                    f"mask {path} is a {image.mode} image: masks must be 8-bit grey or palette PNGs of class indices"
                )
            mask = TF.pil_to_tensor(image)[0].long()
    except OSError as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e
    top = int(mask.max())
    if top >= n_classes:
        raise DatasetError(f"mask {path} has pixel value {top} but {CODES_FILE} names only {n_classes} classes")
    if void is not None:
        mask[mask == void] = IGNORE_INDEX
    return mask


class MaskedImageDataset(Dataset):
    """(image, mask) pairs at one input size: bilinear resize for the image, nearest for the mask. Training
    images are float [0, 1] (augment.py transforms image and mask alike per batch, then normalises);
    validation images are normalised here."""

    def __init__(
        self,
        pairs: list[Pair],
        data: MaskedImages,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
    ) -> None:
        self.pairs = pairs
        self.n_classes = len(data.classes)
        self.void = data.void_index
        self.hw = list(input_hw(data.image_hw, image_size))
        self.mean, self.std = list(mean), list(std)
        self.train = train

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path_ = self.pairs[i]
        try:
            image = decode_image(image_path.read_bytes(), i)
        except (InvalidImage, OSError) as e:
            raise DatasetError(f"cannot read training image {image_path}: {e}") from e
        x = TF.resize(TF.to_tensor(image), self.hw, antialias=True)
        y = TF.resize(
            read_mask(mask_path_, self.n_classes, self.void)[None], self.hw, interpolation=TF.InterpolationMode.NEAREST
        )[0]
        return (x if self.train else TF.normalize(x, self.mean, self.std)), y
