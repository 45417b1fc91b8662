"""The paper recipe trains on 20,000 random MAGICK x BG-20k composites (Sec. 3.3)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from layeringdiff.data import folders
from layeringdiff.data.sources import ImageEntry, Listing

PAPER_EXPERIMENTS = ["fbdd_fg", "fbdd_bg", "hfa_fan", "hfa_ban"]


@pytest.fixture
def fake_magick(monkeypatch):
    """A listing of ``n`` foreground ids (no files: only the length and pairing logic run)."""
    state = {"n": 25_000}

    def list_foregrounds(root):
        return Listing([ImageEntry(f"fg{i:06d}", Path(root) / f"fg{i:06d}.png") for i in range(state["n"])])

    def background_split(root, split, fractions=None):
        return Listing([ImageEntry(f"bg{i:05d}", Path(root) / f"bg{i:05d}.jpg") for i in range(500)])

    monkeypatch.setattr(folders, "list_foregrounds", list_foregrounds)
    monkeypatch.setattr(folders, "background_split", background_split)
    return state


def train_set(cfg, num_samples="config"):
    n = cfg.data.num_train if num_samples == "config" else num_samples
    return instantiate(cfg.data.dataset)(split="train", num_samples=n, size=cfg.data.size, seed=cfg.data.seed)


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_default_to_20000(compose_config, tmp_path, experiment):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}"])
    assert cfg.data.num_train == 20_000


def test_paper_train_set_is_a_stable_random_subset_of_20000(compose_config, tmp_path, fake_magick):
    cfg = compose_config("train", tmp_path, ["experiment=fbdd_fg", "data=folders"])
    data = train_set(cfg)
    assert len(data) == 20_000
    fgs = [e.id for e in data.fgs]
    assert len(set(fgs)) == 20_000  # 20,000 distinct foregrounds, one composite each
    split = [e.id for e in folders.foreground_split(folders.list_foregrounds("x"), "train")]
    assert len(split) > 20_000 and fgs != split[:20_000]  # random, not the first in listing order
    again = train_set(cfg)
    assert [data.pair(i)[0] for i in range(0, 20_000, 997)] == [
        again.pair(i)[0] for i in range(0, 20_000, 997)
    ]
    fake_magick["n"] = 25_300  # 300 more files: the subset changes by at most 300 foregrounds
    assert len(set(fgs) - {e.id for e in train_set(cfg).fgs}) <= 300
    everything = train_set(cfg, num_samples=None)
    assert (
        len(everything)
        == len(everything.fgs)
        == len(folders.foreground_split(folders.list_foregrounds("x"), "train"))
    )
