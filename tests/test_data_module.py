"""LayerDataModule through the real configs: batch contract for every source, sidecars."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from layeringdiff.data.datamodule import MissingSidecarError
from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.sidecar import image_to_uint8, save_sidecar
from layeringdiff.data.synthetic import SyntheticLayers

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"
SHAPES = {"composite": 3, "foreground": 3, "background": 3, "alpha": 1, "trimap": 1}


def data_config(name: str):
    """The ``data`` group option ``name`` as composed (with the shared ``data/common`` base)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIGS.parent), version_base="1.3"):
        return compose("train", overrides=[f"data={name}"]).data


def _datamodule(name: str, **over):
    cfg = data_config(name)
    cfg = OmegaConf.merge(cfg, {"size": 32, "batch_size": 3, "num_workers": 0}, over)
    return instantiate(cfg)


def _check_batch(batch: dict, n: int, size: int = 32) -> None:
    for k, c in SHAPES.items():
        x = batch[k]
        assert x.shape == (n, c, size, size) and x.dtype == torch.float32
        assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert set(torch.unique(batch["trimap"]).tolist()) <= {0.0, 0.5, 1.0}
    a, f, b = batch["alpha"], batch["foreground"], batch["background"]
    assert torch.equal(batch["composite"], a * f + (1 - a) * b)
    assert len(batch["key"]) == n and all(isinstance(k, str) for k in batch["key"])
    assert len(batch["fg_caption"]) == n


def test_synthetic_datamodule_batches():
    dm = _datamodule("synthetic", num_train=7, num_val=4, num_test=2)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == 2  # drop_last: 7 // 3
    for batch in train:
        _check_batch(batch, 3)
    val = list(dm.val_dataloader())
    assert [len(b["key"]) for b in val] == [3, 1]
    assert val[0]["key"][0] == SyntheticLayers(4, size=32, split="val").key(0)  # in order, split-specific
    # the training order is shuffled but seeded
    again = _datamodule("synthetic", num_train=7, num_val=4, num_test=2)
    assert [b["key"] for b in again.train_dataloader()] == [b["key"] for b in train]
    dm.setup("test")
    _check_batch(next(iter(dm.test_dataloader())), 2)


def test_sidecars_are_merged_and_missing_ones_handled(tmp_path):
    ds = SyntheticLayers(4, size=32, split="train")
    for i in range(4):
        if i != 2:
            s = ds[i]
            save_sidecar(
                tmp_path,
                s["key"],
                {
                    "latent_composite": torch.full((4, 4, 4), float(i)),
                    "fbdd_foreground": image_to_uint8(s["foreground"]),
                },
            )
    dm = _datamodule("synthetic", num_train=4, sidecars=[str(tmp_path)], batch_size=1)
    train = dm.build("train")
    item = train[0]
    assert torch.equal(item["latent_composite"], torch.zeros(4, 4, 4))
    assert torch.equal(item["fbdd_foreground"], item["foreground"])  # uint8 image sidecar -> same floats
    with pytest.raises(MissingSidecarError, match=f"{ds.key(2)}.safetensors"):
        train[2]
    skip = _datamodule("synthetic", num_train=4, sidecars=[str(tmp_path)], missing_sidecar="skip").build(
        "train"
    )
    assert skip[2]["key"] == ds.key(3) and list(skip.skipped) == [ds.key(2)]


@pytest.fixture(scope="module")
def folders(folder_layout):
    return folder_layout(10, 16, size=48, seed=0, megapixels=(0.003, 0.006), testval_fraction=0.6)


def test_folders_and_shards_datamodules(folders, tmp_path):
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    dm = _datamodule(
        "folders",
        dataset={
            "foregrounds": str(folders / "MAGICK"),
            "backgrounds": str(folders / "BG-20k"),
            "fractions": fractions,
        },
        num_val=3,
    )
    dm.setup("fit")
    _check_batch(next(iter(dm.train_dataloader())), 3)
    _check_batch(next(iter(dm.val_dataloader())), 3)
    write_shards(dm.build("val"), tmp_path, "val", samples_per_shard=2)
    sh = _datamodule("shards", dataset={"root": str(tmp_path)})
    batches = list(sh.val_dataloader())
    _check_batch(batches[0], 3)
    assert [k for b in batches for k in b["key"]] == [dm.build("val")[i]["key"] for i in range(3)]


def test_every_data_config_instantiates():
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = data_config(path.stem)
        assert cfg._target_ == "layeringdiff.data.datamodule.LayerDataModule" and cfg.dataset._partial_
        for key in ("size", "batch_size", "num_workers", "pin_memory", "seed", "sidecars"):
            assert key in cfg, f"{path.name} lacks {key}"


def test_preview_writes_a_grid(tmp_path):
    from PIL import Image

    from layeringdiff.data.preview import main

    out = main([f"out={tmp_path / 'grid.png'}", "n=3", "size=32"])
    img = Image.open(out)
    assert img.mode == "RGB" and img.size == (5 * 36 + 4, 14 + 3 * 36 + 4)
    tile = img.crop((4 + 36, 18, 4 + 36 + 32, 18 + 32))  # row 0, alpha column: gray
    arr = np.asarray(tile)
    assert (arr[..., 0] == arr[..., 1]).all() and arr.std() > 0


class _KeyRecorder(__import__("lightning").pytorch.LightningModule):
    """Records the sample keys of every training batch (a one-parameter model, trivially fast)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.keys: list[list[str]] = []

    def training_step(self, batch, batch_idx):
        self.keys.append([self.current_epoch, *batch["key"]])
        return (self.w - batch["alpha"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(dm, tmp_path, max_epochs, ckpt_path=None, every=None):
    import lightning.pytorch as pl

    model = _KeyRecorder()
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path, save_last=True, every_n_train_steps=every, save_top_k=-1, filename="{step}"
    )
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
        callbacks=[checkpoint],
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model.keys


@pytest.mark.parametrize("source", ["synthetic", "shards"])
def test_resumed_run_sees_the_uninterrupted_order(tmp_path, source):
    # The order is a function of (seed, epoch) and the trainer restores its loop counters: a run
    # resumed at an epoch end or in mid-epoch must train on exactly the batches the uninterrupted
    # run trained on from that point (not restart the first epoch's order, nor repeat an epoch's head).
    over = {"num_train": 8, "num_val": 2, "batch_size": 2, "size": 16}
    if source == "shards":
        for split, n in (("train", 8), ("val", 2)):
            write_shards(
                SyntheticLayers(n, size=16, split=split), tmp_path / "shards", split, samples_per_shard=2
            )
        over["dataset"] = {"root": str(tmp_path / "shards"), "shuffle_buffer": 4}
    full = _fit(_datamodule(source, **over), tmp_path / "full", max_epochs=3, every=1)  # 4 steps per epoch
    for step in (4, 6):  # the end of epoch 0's last batch; mid-epoch 1
        ckpt = str(tmp_path / "full" / f"step={step}.ckpt")
        assert _fit(_datamodule(source, **over), tmp_path / f"r{step}", 3, ckpt_path=ckpt) == full[step:]
    first = _fit(_datamodule(source, **over), tmp_path / "part", max_epochs=1)
    resumed = _fit(
        _datamodule(source, **over), tmp_path / "part", 3, ckpt_path=str(tmp_path / "part" / "last.ckpt")
    )
    assert first == full[:4] and resumed == full[4:]
    epochs = [sorted(k for b in full if b[0] == e for k in b[1:]) for e in range(3)]
    assert epochs[0] == epochs[1] == epochs[2]  # every epoch is a permutation of the same samples
    assert [b[1:] for b in full[:4]] != [b[1:] for b in full[4:8]]  # ... in a new order each epoch


def test_shard_workers_skip_the_batches_a_resumed_run_already_trained_on(tmp_path):
    # Loader workers deal batches round-robin; a mid-epoch resume skips each worker's share.
    from torch.utils.data import DataLoader

    from layeringdiff.data.shards import ShardDataset

    write_shards(SyntheticLayers(8, size=16), tmp_path, "train", samples_per_shard=2)

    def batches(resume_batches):
        ds = ShardDataset(tmp_path, "train", size=16, seed=3, shuffle_buffer=3)
        ds.set_epoch(1, resume_batches=resume_batches, batch_size=2)
        return [b["key"] for b in DataLoader(ds, batch_size=2, num_workers=2)]

    full = batches(0)
    assert len(full) == 4 and batches(3) == full[3:]
