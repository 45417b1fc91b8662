"""A full participant session in headless Chromium lands in the study database (slow: run with -m slow).

Needs Debian's chromium and chromium-driver; the fixture installs them with apt-get when missing.
"""

import sqlite3
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from layeringdiff.study import CRITERIA, RATED_IMAGES
from layeringdiff.study.app import create_app
from layeringdiff.study.demo import build_demo_study

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")  # the chromedriver fixture (conftest) installs it


@pytest.fixture
def server(tmp_path):
    demo = build_demo_study(tmp_path / "outputs", ["ours", "baseline"], num_examples=2, size=32)
    settings = dict(
        methods=demo["methods"],
        prompts=demo["prompts"],
        db=str(tmp_path / "study.db"),
        participants=2,
        admin_token="adm",
    )
    app = create_app(settings)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{srv.server_port}", settings["db"]
    srv.shutdown()


def browser(chromedriver: Path, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(chromedriver)), options=opts)
    driver.set_page_load_timeout(60)
    return driver


def wait_saved(driver):
    """Until every clicked answer's autosave request has come back."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: (
            d.find_element("id", "rating-form").get_attribute("data-pending") == "0"
            and "Saved" in d.find_element("id", "status").text
        )
    )


def test_full_session_in_chromium_lands_in_the_database(chromedriver, server, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    app, base, db = server
    study = app.extensions["study"]
    token = sorted(study.participants)[0]
    order = study.order(token)
    questions = [(la, cr) for la in RATED_IMAGES for cr in CRITERIA]
    expected = {}

    def click(driver, pos, q):
        item = study.catalog.items[order[pos - 1]]
        score = 1 + (pos + q) % 5
        layer, crit = questions[q]
        driver.find_element("css selector", f"label:has(#{layer}__{crit}__{score})").click()
        expected[(item.example, item.method_id, layer, crit)] = score

    driver = browser(chromedriver, tmp_path / "profile1")
    try:
        driver.get(f"{base}/p/{token}")
        driver.find_element("id", "start").click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith(f"/p/{token}/1"))
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth === 32);"
        )
        assert loaded == [True, True, True]
        for q in range(3):  # half of the first page, then the browser is closed
            click(driver, 1, q)
        wait_saved(driver)
    finally:
        driver.quit()

    driver = browser(chromedriver, tmp_path / "profile2")  # a fresh browser: nothing kept client-side
    try:
        driver.get(f"{base}/p/{token}")
        start = driver.find_element("id", "start")
        assert (
            start.text == "Continue" and "0 of 4 images rated" in driver.find_element("id", "progress").text
        )
        start.click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith(f"/p/{token}/1"))
        checked = driver.find_elements("css selector", "input[type=radio]:checked")
        assert len(checked) == 3
        for pos in range(1, len(order) + 1):
            assert driver.current_url.endswith(f"/p/{token}/{pos}")
            for q in range(3 if pos == 1 else 0, len(questions)):
                click(driver, pos, q)
            wait_saved(driver)
            driver.find_element("id", "next").click()
            nxt = f"/p/{token}/{pos + 1}" if pos < len(order) else f"/p/{token}/done"
            WebDriverWait(driver, 30).until(lambda d, nxt=nxt: d.current_url.endswith(nxt))
        assert "All 4 images are rated" in driver.find_element("id", "message").text
    finally:
        driver.quit()

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT example, method_id, layer, criterion, score FROM ratings WHERE participant = ?", (token,)
        ).fetchall()
    assert len(rows) == len(order) * len(questions) == 24
    assert {tuple(r[:4]): r[4] for r in rows} == expected
