"""The local decomposition page (layeringdiff.app) through Flask's test client."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from layeringdiff.app.server import Runner, create_app, parse_box


def scene(w=80, h=64) -> bytes:
    """A blue background with an orange square: PNG bytes."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (30, 60, 200)
    arr[16:48, 24:56] = (240, 140, 30)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    jobs = tmp_path_factory.mktemp("jobs")
    app = create_app({"layering": "auto", "jobs_dir": jobs, "overrides": ["device=cpu"]})
    app.testing = True
    return app.test_client()


def test_page_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b'id="overlay"' in page.data and b"/api/decompose" in page.data


def test_upload_box_run_and_download(client):
    res = client.post(
        "/api/decompose",
        data={"image": (io.BytesIO(scene()), "photo.png"), "box": "18,10,62,54"},
        content_type="multipart/form-data",
    )
    assert res.status_code == 200, res.json
    out = res.json
    assert out["layering"] == "classical"  # no layeringdiff weights in the test tree
    assert {
        "foreground.png",
        "background.png",
        "alpha.png",
        "layers.psd",
        "layers.ora",
        "preview.png",
    } <= set(out["files"])
    fg = Image.open(io.BytesIO(client.get(out["foregrounds"][0]).data))
    assert fg.mode == "RGBA" and fg.size == (80, 64)
    alpha = np.asarray(fg)[..., 3]
    assert alpha[20:44, 28:52].min() > 200 and alpha[:8].max() < 30  # the square, not the background
    ora = client.get(out["files"]["layers.ora"] + "?download=1")
    assert "attachment" in ora.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(ora.data)) as z:
        assert z.read("mimetype") == b"image/openraster"
    assert client.get(out["files"]["layers.psd"]).data[:4] == b"8BPS"


def test_upload_painted_mask(client):
    mask = np.zeros((64, 80), np.uint8)
    mask[18:46, 26:54] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    res = client.post(
        "/api/decompose",
        data={"image": (io.BytesIO(scene()), "p.png"), "mask": (io.BytesIO(buf.getvalue()), "mask.png")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 200, res.json
    alpha = np.asarray(Image.open(io.BytesIO(client.get(res.json["files"]["alpha.png"]).data)))
    assert alpha[24:40, 30:50].min() > 200 and alpha[:8].max() < 30


@pytest.mark.parametrize(
    "data,match",
    [
        ({"image": (io.BytesIO(b"not an image at all"), "x.png"), "box": "1,1,9,9"}, "upload x.png: not a"),
        ({"box": "1,1,9,9"}, "choose an image"),
        ({"image": (io.BytesIO(scene()), "p.png")}, "draw a box or paint a mask"),
        ({"image": (io.BytesIO(scene()), "p.png"), "box": "1,2,three"}, "four numbers"),
    ],
)
def test_bad_upload_is_one_clear_line(client, data, match):
    res = client.post("/api/decompose", data=data, content_type="multipart/form-data")
    assert res.status_code == 400
    assert match in res.json["error"] and "\n" not in res.json["error"]


def test_job_files_only_from_the_output_folder(client):
    assert client.get("/jobs/0123456789abcdef/meta.json").status_code == 404
    assert client.get("/jobs/..%2f..%2fetc/passwd").status_code == 404


def test_parse_box():
    assert parse_box("[1, 2,3 ,4]") == [1.0, 2.0, 3.0, 4.0]


def test_layeringdiff_picked_when_its_weights_exist(tmp_path, monkeypatch):
    import layeringdiff.tasks.infer_build as build

    monkeypatch.setattr(build, "check_weights", lambda *a, **k: None)
    assert Runner("auto", tmp_path).layering == "layeringdiff"


def test_refused_job_leaves_nothing(client):
    runner = client.application.config["RUNNER"]
    before = set(runner.jobs_dir.iterdir())
    res = client.post(
        "/api/decompose",
        data={"image": (io.BytesIO(scene()), "p.png"), "box": "200,200,300,300"},
        content_type="multipart/form-data",
    )
    assert res.status_code == 400 and "outside the 80x64 image" in res.json["error"]
    assert set(runner.jobs_dir.iterdir()) == before
