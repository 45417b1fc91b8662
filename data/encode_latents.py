"""Pre-encode the FBDD training latents (composite, F, B) beside a data set: the latent cache.

For every sample of the chosen splits, writes ``{out}/{key}.safetensors`` holding
``latent_composite``, ``latent_foreground`` and ``latent_background``: the VAE posterior means,
UNSCALED (FBDDModule multiplies by the VAE's ``scaling_factor``). Training reads them with
``data.sidecars=[<out>]`` and then never runs the VAE encoder. Resumable: samples whose sidecar
exists are skipped; each file is written atomically; the settings are recorded in
``{out}/cache_info.json`` and a run with another VAE or image size refuses to mix into the folder.

The cache is only valid for data whose samples are a fixed function of their key (no random
crops or flips at load time): the synthetic data and the prepared shards are.

Examples (arguments after the options are Hydra overrides of configs/train.yaml):
  python data/encode_latents.py --out cache/latents/shards512 --device cuda experiment=fbdd_fg data=shards
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

from layeringdiff.data.sidecar import save_sidecar, sidecar_path
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
    p.add_argument("--out", required=True, help="sidecar folder to write")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="stored latent precision"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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


@torch.no_grad()
def encode_split(
    dataset, vae, out: Path, batch_size: int, num_workers: int, device: str, dtype: torch.dtype
) -> dict:
    """Encode every sample of ``dataset`` whose sidecar is missing. Returns counts."""
    from torch.utils.data import DataLoader

    counts = {"encoded": 0, "skipped": 0}
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for batch in loader:
        todo = [i for i, key in enumerate(batch["key"]) if not sidecar_path(out, key).is_file()]
        counts["skipped"] += len(batch["key"]) - len(todo)
        if not todo:
            continue
        latents = {}
        for name, image_key in LATENT_SOURCES.items():
            images = batch[image_key][todo].to(device, vae.dtype)
            latents[name] = vae.encode(images * 2 - 1).latent_dist.mode().to("cpu", dtype)
        for j, i in enumerate(todo):
            save_sidecar(out, batch["key"][i], {name: lat[j] for name, lat in latents.items()})
        counts["encoded"] += len(todo)
    return counts


def main(argv: list[str] | None = None) -> dict:
    from hydra.utils import instantiate

    args = parse_args(argv)
    cfg = compose_config(args.overrides)
    vae = load_vae(cfg.model.pretrained, bool(cfg.model.get("build_tiny", False))).to(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "vae": str(cfg.model.pretrained),
        "vae_factor": 2 ** (len(vae.config.block_out_channels) - 1),
        "size": int(cfg.data.size),
        "latents": "posterior mean, unscaled (multiply by scaling_factor)",
        "scaling_factor": float(vae.config.scaling_factor),
        "dtype": args.dtype,
    }
    record_settings(out / INFO_NAME, info, error=SystemExit)
    datamodule = instantiate(cfg.data)
    totals = {}
    for split in args.splits:
        dataset = datamodule.build(split)
        totals[split] = encode_split(
            dataset, vae, out, args.batch_size, args.num_workers, args.device, getattr(torch, args.dtype)
        )
        log.info("%s: %s", split, totals[split])
    print(json.dumps(totals))
    return totals


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    main()
