"""``infer(cfg)``: decompose a real image or generate layers from text; write the output folder(s).

Modes (see configs/infer.yaml):

* **bundled sample** (no image, prompt or prompt file): the bundled real photograph with its
  rough mask, so a fresh CPU machine decomposes a real image with no weights;
* **real image**: ``image=PATH`` plus one of ``foreground``, ``box``, ``mask``, ``trimap``, ``alpha``
  (a list of them gives several layers, top-most first);
* **text**: ``prompt=... foreground_indices=[0,1,2]`` (a list of lists for several layers);
* **batch**: ``prompts=FILE`` (JSON lines) into ``out=DIR``, one folder per line, resumable
  (:mod:`layeringdiff.tasks.infer_batch`).

The layering method is the ``layering`` config group (``layering=classical|layeringdiff|...``).
The pieces: settings -> request (:mod:`~layeringdiff.tasks.infer_inputs`), models
(:mod:`~layeringdiff.tasks.infer_build`), run + ``meta.json`` (:mod:`~layeringdiff.tasks.infer_run`).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.export import check_writable
from layeringdiff.pipeline.request import check_seed
from layeringdiff.tasks.infer_batch import infer_batch
from layeringdiff.tasks.infer_build import (
    build_pipeline,
    build_tiny,
    check_weights,
    resolve_device,
    resolve_dtype,
)
from layeringdiff.tasks.infer_inputs import REQUEST_KEYS, bundled_sample, request_from_item
from layeringdiff.tasks.infer_run import generation_settings, run_request

log = logging.getLogger(__name__)


def _batch_pipeline(cfg: DictConfig, device, dtype):
    check_weights(cfg, text_mode=True, needs_detector=True)
    return build_pipeline(cfg, text_mode=True, device=device, dtype=dtype)


def infer(cfg: DictConfig) -> dict:
    """Run inference as configured (see configs/infer.yaml for every key).

    Returns:
        ``{"out_dirs": [...], ...}``: the output folder(s) written (batch mode adds counts).

    Raises:
        UserError (InputError, ImageReadError, MissingWeightsError, OutputExistsError,
        OutputPermissionError): with one-line messages; nothing is written in that case.
    """
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.pipeline.get("build_tiny"):
        build_tiny(cfg)
    default_out = Path(cfg.paths.output_dir)
    if cfg.get("prompts"):
        out_root = Path(cfg.out) if cfg.out else default_out
        make_pipeline = functools.partial(_batch_pipeline, cfg, device, dtype)
        return infer_batch(cfg, out_root, make_pipeline)

    # 1. everything cheap first: inputs, output folder, weights -- so bad input fails before work
    inputs = {k: cfg.get(k) for k in REQUEST_KEYS}
    if inputs["image"] is None and inputs["prompt"] is None:
        inputs.update(bundled_sample(cfg.sample))
        log.info("no image or prompt given: decomposing the bundled sample %s", inputs["image"])
    request = request_from_item(inputs, cfg.height, cfg.width)
    generation_settings(cfg)  # NaN guidance, steps=-1...: refused here, before any model is loaded
    seed = check_seed(cfg.seed)
    out_dir = check_writable(Path(cfg.out) if cfg.out else default_out / "layers")
    check_weights(cfg, request.text_mode, needs_detector=any(s.text for s in request.foregrounds))
    # 2. load the models, run, write
    pipe = build_pipeline(cfg, request.text_mode, device, dtype)
    path = run_request(pipe, cfg, inputs, request, out_dir, seed)
    return {"out_dirs": [str(path)]}
