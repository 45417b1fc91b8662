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
