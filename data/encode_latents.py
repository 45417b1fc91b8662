"""Pre-encode the FBDD training latents (composite, F, B) beside a data set: the latent cache.

For every sample of the chosen splits, stores ``latent_composite``, ``latent_foreground`` and
``latent_background``: the VAE posterior means, UNSCALED (FBDDModule multiplies by the VAE's
``scaling_factor``). The cache is a folder of tar shards with a manifest
(layeringdiff/data/cache_shards.py); training reads it with ``data.sidecars=[<out>]`` (a folder,
an fsspec URL or a ``pipe:`` command) and then never runs the VAE encoder. Resumable: finished
shards are skipped; each shard is written atomically; the settings are recorded in
``{out}/cache_info.json`` and a run with another VAE or image size refuses to mix into the folder.

Sharded: ``--shard I/N`` (or torchrun's RANK / WORLD_SIZE, SLURM's array or task variables) writes
every N-th cache shard; the N runs together write the files one run would, and the last one to
finish writes the complete manifest (``--merge`` rebuilds it and lists shards still missing).

The cache is only valid for data whose samples are a fixed function of their key (no random
crops or flips at load time): the synthetic data and the prepared shards are.

Examples (arguments after the options are Hydra overrides of configs/train.yaml):
  python data/encode_latents.py --out cache/latents/shards512 --device cuda experiment=fbdd_fg data=shards
  torchrun --nproc-per-node 8 data/encode_latents.py --out cache/latents/shards512 --device cuda experiment=fbdd_fg data=shards
  python data/encode_latents.py --out cache/latents/shards512 --merge
  python train.py experiment=fbdd_fg data=shards data.sidecars=[cache/latents/shards512]
  python data/encode_latents.py --out cache/latents/smoke experiment=fbdd_smoke   # tiny, CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from layeringdiff.files import record_settings

log = logging.getLogger("encode_latents")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
INFO_NAME = "cache_info.json"
LATENT_SOURCES = {
    "latent_composite": "composite",
    "latent_foreground": "foreground",
    "latent_background": "background",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="stored latent precision"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--samples-per-shard", type=int, default=500, help="map-style data: samples per cache shard"
    )
    p.add_argument("--shard", default=None, help="I/N: write every N-th cache shard from the I-th (0-based)")
    p.add_argument("--merge", action="store_true", help="only rebuild the manifest from the finished shards")
    p.add_argument("--progress", action="store_true", help="progress bar over the cache shards")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=fbdd_fg data=shards")
    return p.parse_args(argv)


def compose_config(overrides: list[str]):
    """The train config that ``train.py <overrides>`` would use (data without sidecars)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, "data.sidecars=[]", "paths.output_dir=."])


def load_vae(pretrained: str, build_tiny: bool = False):
    """The frozen SD2 VAE named by ``model.pretrained`` (tiny repo built first when asked)."""
    from diffusers import AutoencoderKL

    from layeringdiff.weights import resolve_pretrained

    if build_tiny:
        from layeringdiff.tiny import sd2

        sd2.build(pretrained)
    root = resolve_pretrained(pretrained, "SD2-inpainting vae", "vae")
    return AutoencoderKL.from_pretrained(root, subfolder="vae").eval().requires_grad_(False)


def latent_compute(vae, device: str, dtype: torch.dtype):
    """``batch -> {latent_<image>: (B, 4, h, w)}``: posterior means of the batch's images, unscaled."""

    @torch.no_grad()
    def compute(batch: dict) -> dict[str, torch.Tensor]:
        out = {}
        for name, image_key in LATENT_SOURCES.items():
            images = batch[image_key].to(device, vae.dtype)
            out[name] = vae.encode(images * 2 - 1).latent_dist.mode().to("cpu", dtype)
        return out

    return compute


def main(argv: list[str] | None = None) -> dict:
    from hydra.utils import instantiate

    from layeringdiff.data.cache_jobs import fill_cache, merge_cache
    from layeringdiff.sharding import local_device, resolve_shard

    args = parse_args(argv)
    out = Path(args.out)
    if args.merge:
        merged = merge_cache(out, INFO_NAME)
        print(json.dumps(merged))
        return merged
    shard = resolve_shard(args.shard)
    device = local_device(args.device)
    cfg = compose_config(args.overrides)
    vae = load_vae(cfg.model.pretrained, bool(cfg.model.get("build_tiny", False))).to(device)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "vae": str(cfg.model.pretrained),
        "vae_factor": 2 ** (len(vae.config.block_out_channels) - 1),
        "size": int(cfg.data.size),
        "latents": "posterior mean, unscaled (multiply by scaling_factor)",
        "scaling_factor": float(vae.config.scaling_factor),
        "dtype": args.dtype,
        "samples_per_shard": args.samples_per_shard,
    }
    record_settings(out / INFO_NAME, info, error=SystemExit)
    datamodule = instantiate(cfg.data)
    datasets = {split: datamodule.build(split) for split in args.splits}
    compute = latent_compute(vae, device, getattr(torch, args.dtype))
    counts = fill_cache(
        out,
        datasets,
        compute,
        shard,
        info,
        args.samples_per_shard,
        args.batch_size,
        args.num_workers,
        args.progress,
    )
    totals = {split: {"encoded": c["written"], "skipped": c["skipped"]} for split, c in counts.items()}
    for split, c in totals.items():
        log.info("%s: %s", split, c)
    print(json.dumps(totals))
    return totals


if __name__ == "__main__":
    from layeringdiff.errors import UserError, one_line

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        main()
    except UserError as e:  # a bad --shard, an incomplete cache folder: one line
        sys.exit(f"error: {one_line(e)}")
