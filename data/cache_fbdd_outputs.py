"""Cache FBDD outputs (F_hat, B_hat) beside a data set: the inputs HFA is trained on.

For every sample of the chosen splits, stores the uint8 images ``fbdd_foreground`` and/or
``fbdd_background`` in a cache of tar shards with a manifest (layeringdiff/data/cache_shards.py);
training then reads them with ``data.sidecars=[<out>]`` (a folder, an fsspec URL or a ``pipe:``
command). Resumable: finished shards are skipped; each shard is written atomically; settings are
recorded in ``{out}/cache_info.json`` and a run with other settings refuses to mix into the same
folder. Samples of a batch the FBDD refuses (e.g. a bad size) are counted as failed and left out.

Sharded: ``--shard I/N`` (or torchrun's RANK / WORLD_SIZE, SLURM's array or task variables) writes
every N-th cache shard; the N runs together write the files one run would, and the last one to
finish writes the complete manifest (``--merge`` rebuilds it and lists shards still missing).

Modes:
  fbdd     the paper's setting: run the exported FBDD models (``FBDD.from_pretrained``).
  degrade  development aid, NOT the paper's setting: degraded ground truth
           (layeringdiff.networks.hfa.degrade_like_fbdd), for working without trained FBDD models.

Examples (arguments after the options are Hydra overrides of configs/train.yaml's data group):
  python data/cache_fbdd_outputs.py --out data/fbdd_outputs/shards --mode fbdd \\
      --fbdd-foreground outputs/fbdd_fg/<run>/export --fbdd-background outputs/fbdd_bg/<run>/export \\
      --batch-size 8 --device cuda data=shards     # --steps: configs/fbdd/default.yaml
  python data/cache_fbdd_outputs.py --out cache/fbdd_degrade --mode degrade \\
      data=synthetic data.size=64 data.num_train=8 data.num_val=2
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from layeringdiff.data.sidecar import image_to_uint8
from layeringdiff.errors import UserError
from layeringdiff.files import record_settings

log = logging.getLogger("cache_fbdd_outputs")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
INFO_NAME = "cache_info.json"


def fbdd_sampling() -> dict:
    """The shared FBDD sampling settings (``configs/fbdd/default.yaml``): the HFA cache must sample
    FBDD as inference and Table 4 do, or HFA learns to refine outputs it never sees."""
    from omegaconf import OmegaConf

    return dict(OmegaConf.load(CONFIG_DIR / "fbdd" / "default.yaml"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--mode", choices=("fbdd", "degrade"), required=True)
    p.add_argument("--fbdd-foreground", help="exported FBDD foreground model folder (mode fbdd)")
    p.add_argument("--fbdd-background", help="exported FBDD background model folder (mode fbdd)")
    sampling = fbdd_sampling()
    p.add_argument(
        "--steps", type=int, default=sampling["num_inference_steps"],
        help="FBDD sampler steps (default: configs/fbdd/default.yaml, which inference and Table 4 read)",
    )  # fmt: skip
    p.add_argument(
        "--scheduler", default=sampling["scheduler"],
        help="FBDD sampler: ddim | dpmsolver++ | ddpm | euler (default: configs/fbdd/default.yaml)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="noise / degradation seed")
    p.add_argument("--splits", default="train,val", help="comma-separated: train,val,test")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--samples-per-shard", type=int, default=500, help="map-style data: samples per cache shard"
    )
    p.add_argument("--shard", default=None, help="I/N: write every N-th cache shard from the I-th (0-based)")
    p.add_argument("--merge", action="store_true", help="only rebuild the manifest from the finished shards")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the data config, e.g. data=shards")
    args = p.parse_args(argv)
    args.splits = [s for s in args.splits.split(",") if s]
    if not args.splits or not set(args.splits) <= {"train", "val", "test"}:
        p.error(f"--splits: comma-separated names out of train, val, test; got {args.splits}")
    if args.mode == "fbdd" and not args.merge and not (args.fbdd_foreground or args.fbdd_background):
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
    info = {"mode": args.mode, "seed": args.seed, "samples_per_shard": args.samples_per_shard}
    if args.mode == "fbdd":
        info.update(
            steps=args.steps,
            scheduler=args.scheduler,
            fbdd_foreground=str(args.fbdd_foreground) if args.fbdd_foreground else None,
            fbdd_background=str(args.fbdd_background) if args.fbdd_background else None,
        )
    return info


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


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Run the cache; returns ``{split: {"written", "skipped", "failed"}}`` (this process's shards)."""
    from layeringdiff.data.cache_jobs import fill_cache, merge_cache
    from layeringdiff.sharding import local_device, resolve_shard

    args = parse_args(argv)
    out = Path(args.out)
    if args.merge:
        merged = merge_cache(out, INFO_NAME)
        print(
            f"{out}: {merged['samples']} samples in {merged['shards']} shards, {len(merged['missing'])} missing"
        )
        return merged
    shard = resolve_shard(args.shard)
    args.device = local_device(args.device)
    # data and models first: a missing model or data set must not leave a settings file behind
    # that would refuse the corrected rerun into the same --out
    dm = build_datamodule(args.overrides)
    produce = Producer(args)
    out.mkdir(parents=True, exist_ok=True)
    settings = cache_settings(args)
    record_settings(out / INFO_NAME, settings, error=SystemExit)

    def compute(batch: dict) -> dict[str, torch.Tensor]:
        return {k: image_to_uint8(v).cpu() for k, v in produce(batch, list(batch["key"])).items()}

    datasets = {split: dm.build(split) for split in args.splits}
    results = fill_cache(
        out, datasets, compute, shard, settings, args.samples_per_shard, args.batch_size, args.num_workers,
        not args.no_progress,
    )  # fmt: skip
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
