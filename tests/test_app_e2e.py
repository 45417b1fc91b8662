"""The decomposition page in headless Chromium: upload, draw a box, run, download (slow: -m slow).

Needs Debian's chromium and chromium-driver; the fixture installs them with apt-get when missing
(as tests/test_study_e2e.py does).
"""

import io
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from werkzeug.serving import make_server

from layeringdiff.app.server import create_app

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")  # the chromedriver fixture (conftest) installs it


@pytest.fixture
def server(tmp_path):
    app = create_app({"layering": "classical", "jobs_dir": tmp_path / "jobs", "overrides": ["device=cpu"]})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def browser(chromedriver: Path, profile: Path, downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,1000"):  # fmt: skip
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(str(chromedriver)), options=opts)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


def test_upload_draw_run_download(chromedriver, server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    arr = np.zeros((120, 160, 3), np.uint8)
    arr[...] = (30, 60, 200)
    arr[30:90, 50:110] = (240, 140, 30)
    photo = tmp_path / "photo.png"
    Image.fromarray(arr).save(photo)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser(chromedriver, tmp_path / "profile", downloads)
    try:
        driver.get(server)
        driver.find_element("id", "file").send_keys(str(photo))
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element("id", "overlay").get_attribute("width") == "160"
        )
        overlay = driver.find_element("id", "overlay")
        scale = overlay.size["width"] / 160  # CSS pixels per image pixel
        # drag a box from image (40, 20) to (120, 100); offsets are from the element's centre
        start = ((40 - 80) * scale, (20 - 60) * scale)
        ActionChains(driver).move_to_element_with_offset(overlay, *start).click_and_hold().move_by_offset(
            80 * scale, 80 * scale
        ).release().perform()
        run = driver.find_element("id", "run")
        assert run.is_enabled()
        run.click()
        WebDriverWait(driver, 300).until(
            lambda d: d.find_element("id", "status").text == "done" or d.find_element("id", "error").text
        )
        assert driver.find_element("id", "error").text == ""
        shown = driver.find_elements("css selector", "#results img.checker")
        assert len(shown) == 1  # the foreground, over the checkerboard
        links = {a.text: a for a in driver.find_elements("css selector", "a.download")}
        assert {"layers.psd", "layers.ora", "foreground.png", "preview.png"} <= set(links)
        links["layers.ora"].click()
        target = downloads / "layers.ora"
        deadline = time.time() + 60
        while not target.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert target.exists(), list(downloads.iterdir())
        with zipfile.ZipFile(target) as z:
            fg = Image.open(io.BytesIO(z.read("data/foreground_1.png")))
        alpha = np.asarray(fg)[..., 3]
        assert alpha[40:80, 60:100].min() > 200 and alpha[:15].max() < 30  # the box found the square
    finally:
        driver.quit()
