import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one intra-op thread, and far faster on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# FBDD on a tiny random SD2-inpainting repo, built once per test module that asks for it.
@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from layeringdiff.tiny import sd2

    return sd2.build(tmp_path_factory.mktemp("tiny") / "sd2_inpainting")


@pytest.fixture(scope="module")
def null_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("null_prompt")


@pytest.fixture(scope="module")
def fbdd(repo, null_cache):
    from layeringdiff.networks.fbdd import FBDD

    return FBDD.from_sd2_inpainting(repo, "foreground", null_prompt_cache=null_cache)


@pytest.fixture(scope="session")
def folder_layout(tmp_path_factory):
    """Factory: a MAGICK + BG-20k folder layout of random images in a new temporary folder."""

    def make(n_fg: int, n_bg: int, size: int, seed: int, megapixels, testval_fraction: float):
        from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder

        root = tmp_path_factory.mktemp("layout")
        write_magick_folder(root / "MAGICK", n_fg, size=size, seed=seed)
        write_bg20k_folder(
            root / "BG-20k", n_bg, seed=seed, megapixels=megapixels, testval_fraction=testval_fraction
        )
        return root

    return make


@pytest.fixture(scope="session")
def compose_config():
    """Factory: compose a top-level config (``train``, ``infer``, ``evaluate``) as a run's task sees it.

    ``compose_config(name, base, overrides, output="run", cache_dir=None, resolve=False)`` puts the
    root, run, log and cache folders under ``base``, sets the Hydra config and drops its node;
    ``resolve=True`` also resolves every interpolation (which must then all resolve).
    """
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    configs = Path(__file__).resolve().parents[1] / "configs"

    def compose_(name: str, base, overrides=(), *, output: str = "run", cache_dir=None, resolve=False):
        base = Path(base)
        paths = [
            f"paths.root_dir={base}",
            f"paths.output_dir={base / output}",
            f"paths.log_dir={base / 'logs'}",
            f"paths.cache_dir={cache_dir or base / 'cache'}",
        ]
        with initialize_config_dir(str(configs), version_base="1.3"):
            cfg = compose(name, overrides=paths + list(overrides), return_hydra_config=True)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        if resolve:
            OmegaConf.resolve(cfg)
        return cfg

    return compose_


CHROMEDRIVER, CHROMIUM = "/usr/bin/chromedriver", "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromedriver():
    """Debian's chromium + chromedriver for the slow browser tests (installed with apt when missing)."""
    import shutil
    import subprocess
    from pathlib import Path

    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("chromium/chromium-driver missing and apt-get cannot run here (needs root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = "apt-get update && apt-get install -y chromium chromium-driver"
        done = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"could not install chromium: {done.stderr.strip().splitlines()[-1:]}")
    return Path(CHROMEDRIVER)
