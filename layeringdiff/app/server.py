"""The Flask app of the local page: one upload -> one output folder under ``jobs_dir/<job>/layers``.

Routes: ``GET /`` (the page), ``POST /api/decompose`` (multipart: ``image`` file, and ``box``
"x0,y0,x1,y1" in image pixels or ``mask`` PNG of the image's size), ``GET /jobs/<job>/<file>``
(a file of that job's output folder). Bad input answers 400 with ``{"error": one line}``.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
from pathlib import Path

from flask import Flask, abort, jsonify, request, send_from_directory

from layeringdiff.errors import UserError, one_line
from layeringdiff.pipeline.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 40 * 2**20
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
JOB_RE = re.compile(r"[0-9a-f]{16}")


def parse_box(text: str) -> list[float]:
    """ "x0,y0,x1,y1" (or with brackets/spaces) -> four floats; one-line InputError otherwise."""
    parts = [p for p in re.split(r"[\s,\[\]]+", text.strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"box must be four numbers x0,y0,x1,y1, got {text!r}") from None
    if len(vals) != 4:
        raise InputError(f"box must be four numbers x0,y0,x1,y1, got {text!r}")
    return vals


class Runner:
    """Composes the ``infer`` config once, builds the pipeline on first use, runs one job at a time.

    Args:
        layering: ``auto`` (layeringdiff when its weights exist, else classical) or a member of
            ``configs/layering/``.
        jobs_dir: where each job's upload and output folder go.
        overrides: more Hydra overrides of ``configs/infer.yaml`` (e.g. ``device=cpu``).
    """

    def __init__(self, layering: str = "auto", jobs_dir: str | Path = "outputs/app", overrides=()):
        self.jobs_dir = Path(jobs_dir).expanduser().absolute()
        self.overrides = list(overrides)
        self.cfg = self._pick(layering)
        self.layering = str(self.cfg.layering.name)
        self.pipe = None
        self.lock = threading.Lock()

    def _compose(self, layering: str):
        from hydra import compose, initialize_config_dir

        base = [
            f"layering={layering}",
            "progress=false",
            f"paths.output_dir={self.jobs_dir}",
            f"paths.work_dir={Path.cwd()}",
        ]
        with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
            return compose("infer", overrides=base + self.overrides)

    def _pick(self, layering: str):
        from layeringdiff.tasks.infer_build import check_weights
        from layeringdiff.weights import MissingWeightsError

        if layering != "auto":
            cfg = self._compose(layering)
            check_weights(cfg, text_mode=False, needs_detector=False)
            return cfg
        try:
            cfg = self._compose("layeringdiff")
            check_weights(cfg, text_mode=False, needs_detector=False)
            return cfg
        except MissingWeightsError:
            return self._compose("classical")

    def run(self, image: bytes, filename: str, box: str | None, mask: bytes | None) -> tuple[str, Path]:
        """Decompose one upload; returns ``(job id, output folder)``."""
        if (box is None) == (mask is None):
            raise InputError("draw a box or paint a mask over the image (one of them)")
        job = secrets.token_hex(8)
        job_dir = self.jobs_dir / job
        job_dir.mkdir(parents=True)
        suffix = Path(filename or "").suffix.lower()
        image_path = job_dir / f"input{suffix if suffix in IMAGE_SUFFIXES else '.png'}"
        try:
            return job, self._run(job_dir, image_path, image, box, mask)
        except UserError as e:  # nothing kept of a refused job; the message names the upload
            shutil.rmtree(job_dir, ignore_errors=True)
            raise InputError(one_line(e).replace(str(image_path), f"upload {filename}")) from None
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise

    def _run(
        self, job_dir: Path, image_path: Path, image: bytes, box: str | None, mask: bytes | None
    ) -> Path:
        from layeringdiff.files import atomic_write_bytes
        from layeringdiff.tasks.infer_build import build_pipeline, resolve_device, resolve_dtype
        from layeringdiff.tasks.infer_inputs import REQUEST_KEYS, request_from_item
        from layeringdiff.tasks.infer_run import run_request

        atomic_write_bytes(image_path, image)
        inputs = {k: None for k in REQUEST_KEYS}
        inputs["image"] = str(image_path)
        if box is not None:
            inputs["box"] = parse_box(box)
        else:
            atomic_write_bytes(job_dir / "mask.png", mask)
            inputs["mask"] = str(job_dir / "mask.png")
        req = request_from_item(inputs, int(self.cfg.height), int(self.cfg.width))
        with self.lock:
            if self.pipe is None:
                device = resolve_device(self.cfg.device)
                self.pipe = build_pipeline(self.cfg, False, device, resolve_dtype(self.cfg.dtype, device))
            return run_request(self.pipe, self.cfg, inputs, req, job_dir / "layers", int(self.cfg.seed))


def job_listing(job: str, out: Path) -> dict:
    """The JSON answer of a finished job: every file's URL, the layers in page order."""
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    url = {n: f"/jobs/{job}/{n}" for n in names}
    fgs = [n for n in names if re.fullmatch(r"foreground(_\d+)?\.png", n)]
    fgs.sort(key=lambda n: int(re.sub(r"\D", "", n) or 0))
    return {
        "job": job,
        "files": url,
        "foregrounds": [url[n] for n in fgs],
        "background": url["background.png"],
        "preview": url["preview.png"],
    }


def create_app(settings: dict | None = None, runner: Runner | None = None) -> Flask:
    """The app; ``settings``: ``layering``, ``jobs_dir``, ``overrides`` for :class:`Runner`."""
    runner = runner or Runner(**(settings or {}))
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES, RUNNER=runner)

    @app.get("/")
    def page():
        return send_from_directory(STATIC, "page.html")

    @app.post("/api/decompose")
    def decompose():
        upload = request.files.get("image")
        if upload is None or not upload.filename:
            return jsonify(error="choose an image file to upload"), 400
        mask = request.files.get("mask")
        box = request.form.get("box") or None
        try:
            job, out = runner.run(upload.read(), upload.filename, box, mask.read() if mask else None)
        except UserError as e:
            return jsonify(error=one_line(e)), 400
        return jsonify(layering=runner.layering, **job_listing(job, out))

    @app.get("/jobs/<job>/<name>")
    def job_file(job: str, name: str):
        out = runner.jobs_dir / job / "layers"
        if not JOB_RE.fullmatch(job) or not (out / name).is_file() or "/" in name or name.startswith("."):
            abort(404)
        return send_from_directory(out, name, as_attachment=request.args.get("download") == "1")

    @app.errorhandler(413)
    def too_large(_):
        return jsonify(error=f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MiB"), 413

    return app
