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
