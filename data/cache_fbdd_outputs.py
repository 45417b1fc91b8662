"""Cache FBDD outputs (F_hat, B_hat) beside a data set: the inputs HFA is trained on.

For every sample of the chosen splits, writes ``{out}/{key}.safetensors`` holding the uint8 images
``fbdd_foreground`` and/or ``fbdd_background``; training then reads them with
``data.sidecars=[<out>]`` (layeringdiff.data.sidecar). Resumable: samples whose sidecar already
holds every requested tensor are skipped (a partial sidecar is completed, not redone); each file
is written atomically; settings are recorded in ``{out}/cache_info.json`` and a run with other
settings refuses to mix into the same folder.

Modes:
  fbdd     the paper's setting: run the exported FBDD models (``FBDD.from_pretrained``).
  degrade  development aid, NOT the paper's setting: degraded ground truth
           (layeringdiff.networks.hfa.degrade_like_fbdd), for working without trained FBDD models.

Examples (arguments after the options are Hydra overrides of configs/train.yaml's data group):
  python data/cache_fbdd_outputs.py --out data/fbdd_outputs/shards --mode fbdd \\
      --fbdd-foreground outputs/fbdd_fg/<run>/export --fbdd-background outputs/fbdd_bg/<run>/export \\
      --steps 50 --batch-size 8 --device cuda data=shards
  python data/cache_fbdd_outputs.py --out cache/fbdd_degrade --mode degrade \\
      data=synthetic data.size=64 data.num_train=8 data.num_val=2
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from layeringdiff.data.sidecar import image_to_uint8, sidecar_path
from layeringdiff.errors import UserError
from layeringdiff.files import atomic_write_bytes, record_settings

log = logging.getLogger("cache_fbdd_outputs")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
INFO_NAME = "cache_info.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="sidecar folder to write")
    p.add_argument("--mode", choices=("fbdd", "degrade"), required=True)
    p.add_argument("--fbdd-foreground", help="exported FBDD foreground model folder (mode fbdd)")
    p.add_argument("--fbdd-background", help="exported FBDD background model folder (mode fbdd)")
    p.add_argument("--steps", type=int, default=50, help="FBDD sampler steps")
    p.add_argument("--scheduler", default="ddim", help="FBDD sampler: ddim | dpmsolver++ | ddpm | euler")
    p.add_argument("--seed", type=int, default=0, help="noise / degradation seed")
    p.add_argument("--splits", default="train,val", help="comma-separated: train,val,test")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the data config, e.g. data=shards")
    args = p.parse_args(argv)
    args.splits = [s for s in args.splits.split(",") if s]
    if not args.splits or not set(args.splits) <= {"train", "val", "test"}:
        p.error(f"--splits: comma-separated names out of train, val, test; got {args.splits}")
    if args.mode == "fbdd" and not (args.fbdd_foreground or args.fbdd_background):
        p.error("--mode fbdd needs --fbdd-foreground and/or --fbdd-background")
    return args


def build_datamodule(overrides: list[str]):
    """The LayerDataModule that ``train.py <overrides>`` would use, without sidecars."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "data.sidecars=[]"])
    return instantiate(cfg.data)


def cache_settings(args: argparse.Namespace) -> dict:
    info = {"mode": args.mode, "seed": args.seed}
    if args.mode == "fbdd":
        info.update(
            steps=args.steps,
            scheduler=args.scheduler,
            fbdd_foreground=str(args.fbdd_foreground) if args.fbdd_foreground else None,
            fbdd_background=str(args.fbdd_background) if args.fbdd_background else None,
        )
    return info


def stored_names(out: Path, key: str) -> set[str]:
    """Tensor names already in a sample's sidecar (empty when there is none or it is unreadable)."""
    from safetensors import safe_open

    path = sidecar_path(out, key)
    if not path.is_file():
        return set()
    try:
        with safe_open(str(path), framework="pt") as f:
            return set(f.keys())
    except Exception:  # a corrupt file is redone
        return set()


def write_sidecar(out: Path, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Add uint8 images to the sample's sidecar (keeping what it already holds), atomically."""
    from safetensors.torch import load_file, save

    path = sidecar_path(out, key)
    merged = load_file(str(path)) if stored_names(out, key) else {}
    merged.update({k: image_to_uint8(v).cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, save(merged))


class Producer:
    """Makes ``fbdd_<layer>`` tensors for a batch: FBDD sampling or degraded ground truth."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.models: dict[str, object] = {}
        if args.mode == "fbdd":
            from layeringdiff.networks.fbdd import FBDD

            for layer, path in (("foreground", args.fbdd_foreground), ("background", args.fbdd_background)):
                if path:
                    model = FBDD.from_pretrained(path).to(args.device).eval()
                    if model.layer != layer:
                        raise SystemExit(f"{path}: an FBDD {model.layer} model given as --fbdd-{layer}")
                    self.models[layer] = model
            self.layers = list(self.models)
        else:
            self.layers = ["foreground", "background"]
        self.names = {f"fbdd_{layer}" for layer in self.layers}

    def __call__(self, batch: dict, keys: list[str]) -> dict[str, torch.Tensor]:
        from layeringdiff.data.splits import stable_seed
        from layeringdiff.networks.hfa import degrade_like_fbdd

        out = {}
        for layer in self.layers:
            if self.args.mode == "degrade":
                per_sample = []
                for i, key in enumerate(keys):  # seeded per sample: independent of batching
                    gen = torch.Generator().manual_seed(stable_seed(self.args.seed, "degrade", layer, key))
                    per_sample.append(
                        degrade_like_fbdd(batch[layer][i : i + 1], batch["alpha"][i : i + 1], layer, gen)
                    )
                out[f"fbdd_{layer}"] = torch.cat(per_sample)
            else:
                # One generator per batch, seeded by its keys: reruns of the same batch agree.
                gen = torch.Generator().manual_seed(stable_seed(self.args.seed, "fbdd", layer, *keys))
                comp = batch["composite"].to(self.args.device)
                alpha = batch["alpha"].to(self.args.device)
                out[f"fbdd_{layer}"] = self.models[layer].decompose(
                    comp,
                    alpha,
                    num_inference_steps=self.args.steps,
                    generator=gen,
                    scheduler=self.args.scheduler,
                )
        return out


def select(batch: dict, index: list[int]) -> dict:
    return {k: (v[index] if torch.is_tensor(v) else [v[i] for i in index]) for k, v in batch.items()}


def cache_split(dm, split: str, out: Path, produce: Producer, args: argparse.Namespace) -> dict[str, int]:
    """Fill the sidecars of one split; returns counts of written, skipped (done) and failed samples."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    loader = DataLoader(dm.build(split), batch_size=args.batch_size, num_workers=args.num_workers)
    counts = {"written": 0, "skipped": 0, "failed": 0}
    bar = tqdm(loader, desc=f"{split}", unit="batch", disable=args.no_progress)
    for batch in bar:
        keys = list(batch["key"])
        todo = [i for i, k in enumerate(keys) if not produce.names <= stored_names(out, k)]
        counts["skipped"] += len(keys) - len(todo)
        if todo:
            sub = select(batch, todo)
            try:
                tensors = produce(sub, list(sub["key"]))
            except UserError as e:  # e.g. FBDDInputError for a bad size: count it, go on
                counts["failed"] += len(todo)
                log.warning("%s: %d samples failed: %s", split, len(todo), str(e).splitlines()[0])
            else:
                for j, key in enumerate(sub["key"]):
                    write_sidecar(out, key, {name: t[j] for name, t in tensors.items()})
                counts["written"] += len(todo)
        bar.set_postfix(counts)
    return counts


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Run the cache; returns ``{split: {"written", "skipped", "failed"}}``."""
    args = parse_args(argv)
    out = Path(args.out)
    # data and models first: a missing model or data set must not leave a settings file behind
    # that would refuse the corrected rerun into the same --out
    dm = build_datamodule(args.overrides)
    produce = Producer(args)
    out.mkdir(parents=True, exist_ok=True)
    record_settings(out / INFO_NAME, cache_settings(args), error=SystemExit)
    results = {split: cache_split(dm, split, out, produce, args) for split in args.splits}
    for split, counts in results.items():
        log.info("%s: %s", split, counts)
        print(
            f"{split}: written {counts['written']}, already done {counts['skipped']}, failed {counts['failed']}"
        )
    return results


if __name__ == "__main__":
    from layeringdiff.errors import one_line

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(sys.argv[1:])
    except UserError as e:  # missing weights, bad input: one line; anything else keeps its traceback
        sys.exit(f"error: {one_line(e)}")
