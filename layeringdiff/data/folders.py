"""``FolderComposites``: the paper's composites made on the fly from foreground / background folders."""

from __future__ import annotations

import logging
import os

from torch.utils.data import Dataset

from layeringdiff.data.pairs import Pair, pair_key, read_pair_list
from layeringdiff.data.recipe import TRIMAP_KERNEL_RANGE, make_sample, resize_crop
from layeringdiff.data.skips import SkipCounter
from layeringdiff.data.sources import (
    DEFAULT_MIN_SIDE,
    BadSampleError,
    DataSourceError,
    ImageEntry,
    background_split,
    foreground_split,
    list_foregrounds,
    list_image_folder,
    load_background,
    load_foreground_rgba,
)
from layeringdiff.data.splits import stable_seed

log = logging.getLogger(__name__)
# A run of this many bad files in a row means the source itself is broken: stop instead of looping.
MAX_CONSECUTIVE_BAD = 50


class FolderComposites(Dataset):
    """Composites of RGBA foregrounds (MAGICK layout or any folder) over backgrounds (BG-20k or any).

    Sample ``i`` pairs foreground ``i mod n`` of the split with a background drawn by a stable hash
    of ``(seed, split, i)``; or, with ``pairs``, row ``i`` of a fixed list (the test set). When
    ``num_samples`` is below the split's foreground count (the paper recipe: 20,000 of ~147K
    MAGICK foregrounds), the foregrounds are a seeded random subset: the ``num_samples`` with the
    smallest stable hash of ``(seed, split, id)``, so the choice depends on the ids alone (not on
    listing order) and adding files changes it by at most as many. Each layer
    is resized bicubically so its shorter side is ``size`` and centre-cropped; C = aF + (1-a)B.

    Bad files (corrupt, not an image, no alpha, too small, bombs) are skipped and counted in
    ``skipped`` (path -> one-line reason): ``dataset[i]`` then returns the next good sample.
    ``load(i)`` raises :class:`BadSampleError` instead (the shard writer records those).

    Args:
        foregrounds: foreground folder.
        backgrounds: background folder.
        split: "train", "val" or "test".
        num_samples: length (None = one pass over the split's foregrounds, or the whole list).
        size: crop size.
        seed: pairing and trimap seed.
        pairs: optional TSV pair list (``key fg_id bg_id seed``), or a mapping split -> list file
            (splits it does not name are paired at random).
        fractions: hash-split fractions for foregrounds and plain background folders.
        kernel_range: inclusive range of the random trimap kernels.
        min_side: smallest accepted shorter side of an input image.
        jpeg_draft: decode a JPEG background at least twice ``size`` on its shorter side at 1/2,
            1/4 or 1/8 scale in the DCT domain (Pillow's draft mode) before the bicubic resize:
            ~30% less decoding and resizing; the result differs slightly from a full decode
            (docs/data.md gives the bound; False reproduces the full-decode recipe).
    """

    def __init__(
        self,
        foregrounds: str | os.PathLike,
        backgrounds: str | os.PathLike,
        split: str = "train",
        num_samples: int | None = None,
        size: int = 512,
        seed: int = 0,
        pairs: str | os.PathLike | dict | None = None,
        fractions: dict[str, float] | None = None,
        kernel_range: tuple[int, int] = TRIMAP_KERNEL_RANGE,
        min_side: int = DEFAULT_MIN_SIDE,
        jpeg_draft: bool = True,
    ) -> None:
        self.size, self.seed, self.split = int(size), int(seed), split
        self.kernel_range, self.min_side = tuple(kernel_range), int(min_side)
        self.jpeg_draft = bool(jpeg_draft)
        fractions = dict(fractions) if fractions else None
        fg_listing = list_foregrounds(foregrounds)
        self.skipped: dict[str, str] = dict(fg_listing.skipped)
        self.skip_counter = SkipCounter("sample")
        self.pairs: list[Pair] | None = None
        if pairs is not None and not isinstance(pairs, (str, os.PathLike)):
            pairs = dict(pairs).get(split)
        if pairs:
            self.pairs = read_pair_list(pairs)
            self.fg_by_id = {e.id: e for e in fg_listing.entries}
            self.bg_by_id = {e.id: e for e in list_image_folder(backgrounds).entries}
            unknown = [p for p in self.pairs if p.fg_id not in self.fg_by_id or p.bg_id not in self.bg_by_id]
            if unknown:
                p = unknown[0]
                raise DataSourceError(
                    f"{pairs}: {len(unknown)} rows name images not found under {foregrounds} / {backgrounds}"
                    f" (first: {p.fg_id} / {p.bg_id})"
                )
            total = len(self.pairs)
        else:
            self.fgs = foreground_split(fg_listing, split, fractions)
            if not self.fgs:
                raise DataSourceError(
                    f"{foregrounds}: no foregrounds in split {split!r} ({len(fg_listing.entries)} in all)"
                )
            self.bgs = background_split(backgrounds, split, fractions=fractions).entries
            total = len(self.fgs)
            if num_samples is not None and int(num_samples) < total:  # a seeded random subset
                rank = sorted(
                    self.fgs, key=lambda e: (stable_seed("fg-subset", self.seed, split, e.id), e.id)
                )
                self.fgs = rank[: max(1, int(num_samples))]
        self.num_samples = total if num_samples is None else int(num_samples)
        if self.pairs is not None and self.num_samples > total:
            raise DataSourceError(f"{pairs}: asked for {self.num_samples} composites, the list has {total}")

    def __len__(self) -> int:
        return self.num_samples

    def pair(self, index: int) -> tuple[str, ImageEntry, ImageEntry, int]:
        """(key, foreground entry, background entry, trimap seed) of sample ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        if self.pairs is not None:
            p = self.pairs[index]
            return p.key, self.fg_by_id[p.fg_id], self.bg_by_id[p.bg_id], p.seed
        fg = self.fgs[index % len(self.fgs)]
        bg = self.bgs[stable_seed("bg", self.seed, self.split, index) % len(self.bgs)]
        key = pair_key(fg.id, bg.id)
        return key, fg, bg, stable_seed("trimap", self.seed, key)

    def load(self, index: int) -> dict:
        """Sample ``index``; raises :class:`BadSampleError` naming the bad file."""
        key, fg, bg, trimap_seed = self.pair(index)
        # F and alpha are resized as one straight-alpha RGBA array; nothing turns float before the crop.
        rgba = resize_crop(load_foreground_rgba(fg.path, self.min_side), self.size)
        draft_to = self.size if self.jpeg_draft else None
        background = resize_crop(load_background(bg.path, self.min_side, draft_to), self.size)
        sample = make_sample(
            rgba[:, :, :3], rgba[:, :, 3], background, key, fg.caption, trimap_seed, self.kernel_range
        )
        sample["source"] = f"{fg.path} | {bg.path}"
        return sample

    def __getitem__(self, index: int) -> dict:
        last = None
        for attempt in range(MAX_CONSECUTIVE_BAD):
            try:
                sample = self.load((index + attempt) % self.num_samples)
                sample.pop("source")
                return sample
            except BadSampleError as e:
                last = e
                self.skipped.setdefault(e.path, str(e))
                self.skip_counter.note(e)  # every skip counts; the warnings are rate-limited
        raise DataSourceError(f"{MAX_CONSECUTIVE_BAD} bad samples in a row from index {index}; last: {last}")
