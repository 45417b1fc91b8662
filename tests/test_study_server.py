"""The blinded study server: blinding, per-participant order, resume, refusals, concurrency, admin."""

import json
import re
import sqlite3
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from layeringdiff.study import CRITERIA, RATED_IMAGES
from layeringdiff.study.app import create_app
from layeringdiff.study.catalog import StudySetupError
from layeringdiff.study.demo import build_demo_study

METHODS = ("SecretMethodAlpha", "HiddenBaselineBeta")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_study(tmp_path_factory.mktemp("study"), METHODS, num_examples=3, size=24)


@pytest.fixture
def settings(demo, tmp_path):
    return dict(
        methods=demo["methods"],
        prompts=demo["prompts"],
        db=str(tmp_path / "study.db"),
        participants=4,
        admin_token="admin-secret",
        secret="test-secret",
        seed=0,
    )


def tokens(app):
    study = app.extensions["study"]
    return sorted(study.participants, key=study.participants.get)


def n_rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]


def answer(item_id, token, score=3):
    return [
        dict(token=token, item=item_id, layer=la, criterion=cr, score=score)
        for la in RATED_IMAGES
        for cr in CRITERIA
    ]


def test_pages_images_and_headers_never_name_a_method(settings):
    app = create_app(settings)
    study = app.extensions["study"]
    client = app.test_client()
    token = tokens(app)[0]
    secrets_ = [m.lower() for m in METHODS] + [mid.lower() for mid in study.catalog.method_ids.values()]
    pages = ["/", f"/p/{token}", f"/p/{token}/done"] + [f"/p/{token}/{i}" for i in range(1, 7)]
    seen, assets = set(), set()
    for url in pages:
        resp = client.get(url)
        assert resp.status_code == 200, url
        body = resp.get_data(as_text=True)
        assets |= set(re.findall(r'(?:src|href)="([^"]+)"', body))
        seen.add((url, body, str(resp.headers)))
    image_urls = sorted(a for a in assets if a.startswith("/img/"))
    assert len(image_urls) == 6 * 3  # every (example, method) item, three layers each
    for url in sorted(assets):
        resp = client.get(url)
        assert resp.status_code == 200, url
        seen.add((url, resp.get_data().decode("latin-1"), str(resp.headers)))
    api = client.post("/api/rate", json=answer(study.order(token)[0], token)[0])
    seen.add(("/api/rate", api.get_data(as_text=True), str(api.headers)))
    for url, body, headers in seen:
        for secret in secrets_:
            assert (
                secret not in url.lower() and secret not in body.lower() and secret not in headers.lower()
            ), (url, secret)
    # Images are re-encoded: the demo PNGs carry the method name in a text chunk, the served ones do not.
    assert (
        b"SecretMethodAlpha"
        in Path(settings["methods"]["SecretMethodAlpha"], "00000", "composite.png").read_bytes()
    )
    # Two methods' versions of one example get unrelated ids.
    ids = {(it.example, it.method): iid for iid, it in study.catalog.items.items()}
    assert ids[("00000", METHODS[0])][:8] != ids[("00000", METHODS[1])][:8]


def test_order_is_seeded_per_participant_and_stable(settings, tmp_path):
    app = create_app(settings)
    study = app.extensions["study"]
    t = tokens(app)
    orders = [study.order(tok) for tok in t]
    for order in orders:
        assert sorted(order) == sorted(study.catalog.items)  # a permutation of every item
    assert len({tuple(o) for o in orders}) > 1  # different tokens, different orders
    again = create_app(settings).extensions["study"]  # a new server over the same database
    assert [again.order(tok) for tok in t] == orders
    page = app.test_client().get(f"/p/{t[1]}/2").get_data(as_text=True)
    assert f'name="item" value="{orders[1][1]}"' in page
    few = create_app({**settings, "items_per_participant": 2}).extensions["study"]
    assert [few.order(tok) for tok in t] == [o[:2] for o in orders]
    with pytest.raises(ValueError, match="not assigned to this participant"):
        few.rate(t[0], [(orders[0][2], "foreground", "image_quality", 3)])
    reseeded = create_app({**settings, "seed": 1, "db": str(tmp_path / "other.db")}).extensions["study"]
    assert [reseeded.order(tok) for tok in t] != orders


def test_answers_survive_a_restart_and_the_participant_resumes(settings):
    app = create_app(settings)
    token = tokens(app)[2]
    study = app.extensions["study"]
    order = study.order(token)
    client = app.test_client()
    form = {"item": order[0]} | {f"{la}__{cr}": "4" for la in RATED_IMAGES for cr in CRITERIA}
    resp = client.post(f"/p/{token}/1", data=form)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/p/{token}/2")
    for a in answer(order[1], token, score=2)[:3]:  # half of item 2, one click at a time
        assert client.post("/api/rate", json=a).status_code == 200

    restarted = create_app(settings).test_client()
    start = restarted.get(f"/p/{token}").get_data(as_text=True)
    assert "1 of 6 images rated" in start and f'href="/p/{token}/2"' in start and "Continue" in start
    page = restarted.get(f"/p/{token}/2").get_data(as_text=True)
    checked = re.findall(r'id="(\w+)__(\d)" value="\d" required\s*checked', page)
    assert sorted(checked) == sorted(
        (f"{a['layer']}__{a['criterion']}", "2") for a in answer(order[1], token)[:3]
    )
    # An incomplete form is kept and re-asked, not lost.
    resp = restarted.post(f"/p/{token}/2", data={"item": order[1], "composite__image_quality": "5"})
    assert resp.status_code == 200 and "Please answer every question" in resp.get_data(as_text=True)
    assert n_rows(settings["db"]) == 6 + 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"score": 0}, "score must be a whole number from 1 to 5, got '0'"),
        ({"score": 6}, "got '6'"),
        ({"score": "abc"}, "got 'abc'"),
        ({"score": 3.5}, "got '3.5'"),
        ({"score": "\u00b2"}, "got '\u00b2'"),  # "²": str.isdigit() is true, int() fails (was a 500)
        ({"score": "\u0663"}, "got '\u0663'"),  # Arabic-Indic three: int() would take it
        ({"score": True}, "got 'True'"),
        ({"score": None}, "missing field(s): score"),
        ({"item": "ffffffffffffffffffffffff"}, "unknown item id 'ffffffffffffffffffffffff'"),
        ({"layer": "alpha"}, "unknown layer 'alpha'"),
        ({"criterion": "beauty"}, "unknown criterion 'beauty'"),
        ({"token": "nobody"}, "unknown participant token"),
    ],
)
def test_bad_answers_are_refused_with_a_message(settings, change, message):
    app = create_app(settings)
    token = tokens(app)[0]
    good = answer(app.extensions["study"].order(token)[0], token)[0]
    resp = app.test_client().post("/api/rate", json={**good, **change})
    assert resp.status_code == 400
    assert message in resp.get_json()["error"]
    assert n_rows(settings["db"]) == 0


def test_bad_form_refuses_the_whole_page(settings):
    app = create_app(settings)
    token = tokens(app)[0]
    order = app.extensions["study"].order(token)
    client = app.test_client()
    form = {"item": order[0]} | {f"{la}__{cr}": "4" for la in RATED_IMAGES for cr in CRITERIA}
    resp = client.post(f"/p/{token}/1", data={**form, "background__image_quality": "9"})
    assert resp.status_code == 400 and "got &#39;9&#39;" in resp.get_data(as_text=True)
    assert client.post(f"/p/{token}/1", data={**form, "item": order[1]}).status_code == 400
    assert client.get("/p/not-a-token").status_code == 404
    assert n_rows(settings["db"]) == 0  # one transaction: nothing of a refused page is stored


def test_concurrent_submissions_from_several_participants_are_all_stored(settings):
    app = create_app(settings)
    study = app.extensions["study"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    errors = []

    def participant(token):
        try:
            for item_id in study.order(token)[:3]:
                for a in answer(item_id, token, score=1 + len(token) % 5):
                    req = urllib.request.Request(
                        base + "/api/rate", json.dumps(a).encode(), {"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        assert json.load(resp)["saved"]
        except (AssertionError, urllib.error.URLError) as e:
            errors.append(e)

    threads = [threading.Thread(target=participant, args=(tok,)) for tok in tokens(app)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        server.shutdown()
    assert not errors
    assert n_rows(settings["db"]) == 4 * 3 * 6
    with sqlite3.connect(settings["db"]) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        per = dict(conn.execute("SELECT participant, COUNT(*) FROM ratings GROUP BY participant").fetchall())
    assert per == {tok: 18 for tok in tokens(app)}


def test_admin_page_needs_its_token_and_exports_csv(settings):
    app = create_app(settings)
    client = app.test_client()
    token = tokens(app)[0]
    for a in answer(app.extensions["study"].order(token)[0], token, score=5):
        client.post("/api/rate", json=a)
    assert client.get("/admin").status_code == 403
    assert client.get("/admin", headers={"X-Admin-Token": "wrong"}).status_code == 403
    # never in a URL: the query parameter is not accepted, the page says so
    in_url = client.get("/admin?token=admin-secret")
    assert in_url.status_code == 403 and "not accepted in a URL" in in_url.get_data(as_text=True)
    page = client.get("/admin", headers={"X-Admin-Token": "admin-secret"}).get_data(as_text=True)
    assert "p01" in page and "6 / 36" in page and f"/p/{token}" in page
    assert "admin-secret" not in page  # the CSV link carries no token
    csv_text = client.get("/admin/ratings.csv", headers={"Authorization": "Bearer admin-secret"}).get_data(
        as_text=True
    )
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("label,participant,example,method_id,method,layer,criterion,score")
    assert len(lines) == 7 and all(",5," in line for line in lines[1:])


def test_admin_login_form_sets_a_session_cookie_without_the_token(settings):
    app = create_app(settings)
    client = app.test_client()
    assert 'name="token"' in client.get("/admin").get_data(as_text=True)  # the sign-in form
    wrong = client.post("/admin/login", data={"token": "nope"})
    assert wrong.status_code == 403 and client.get("/admin/ratings.csv").status_code == 403
    resp = client.post("/admin/login", data={"token": "admin-secret"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "admin-secret" not in cookie
    assert client.get("/admin").status_code == 200
    assert client.get("/admin/ratings.csv").status_code == 200
    # a restarted server (same database) keeps the sign-in; another token ends it
    assert (
        create_app(settings)
        .test_client(use_cookies=False)
        .get("/admin", headers={"Cookie": cookie.split(";")[0]})
        .status_code
        == 200
    )
    other = create_app({**settings, "admin_token": "rotated"}).test_client(use_cookies=False)
    assert other.get("/admin", headers={"Cookie": cookie.split(";")[0]}).status_code == 403
    client.post("/admin/logout")
    assert client.get("/admin").status_code == 403


def test_numeric_admin_token_works(settings):
    # YAML / Hydra turn admin_token: 12345 into an int (every admin request was a 500)
    client = create_app({**settings, "admin_token": 12345}).test_client()
    assert client.get("/admin", headers={"X-Admin-Token": "12345"}).status_code == 200
    assert client.post("/admin/login", data={"token": "12345"}).status_code == 303


def test_admin_token_from_a_file_the_environment_or_generated(settings, tmp_path, monkeypatch):
    from layeringdiff.study.app import ADMIN_TOKEN_ENV

    base = {**settings, "admin_token": None}
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-env")
    client = create_app(base).test_client()
    assert client.get("/admin", headers={"X-Admin-Token": "from-env"}).status_code == 200
    token_file = tmp_path / "admin.token"
    token_file.write_text("from-file\n")
    client = create_app({**base, "admin_token_file": str(token_file)}).test_client()
    assert client.get("/admin", headers={"X-Admin-Token": "from-file"}).status_code == 200
    assert client.get("/admin", headers={"X-Admin-Token": "from-env"}).status_code == 403
    with pytest.raises(StudySetupError, match="cannot read admin_token_file .*missing.token"):
        create_app({**base, "admin_token_file": str(tmp_path / "missing.token")})
    monkeypatch.delenv(ADMIN_TOKEN_ENV)
    app = create_app(base)  # generated once, stored in the database and in <db>.admin_token (0600)
    written = Path(settings["db"] + ".admin_token")
    assert (written.stat().st_mode & 0o777) == 0o600
    generated = written.read_text().strip()
    assert generated == app.extensions["study"].admin_token and len(generated) >= 20
    assert create_app(base).extensions["study"].admin_token == generated  # stable across restarts


def test_requests_are_size_limited_and_carry_security_headers(settings):
    app = create_app(settings)
    client = app.test_client()
    token = tokens(app)[0]
    big = client.post(f"/p/{token}/1", data={"item": "x" * (200 * 1024)})
    assert big.status_code == 413
    resp = client.get(f"/p/{token}/1")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_corrupt_database_and_bad_prompt_line_are_one_line_errors(settings, tmp_path, capsys):
    from layeringdiff.errors import ConfigError
    from layeringdiff.study.__main__ import main

    bad_db = tmp_path / "corrupt.db"
    bad_db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable study database: .*corrupt.db"):
        create_app({**settings, "db": str(bad_db)})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "00000", "prompt": "a cat"}\n{"id": "00001", "prompt": \n')
    with pytest.raises(StudySetupError, match=r"p.jsonl, line 2: not JSON"):
        create_app({**settings, "prompts": str(prompts)})
    prompts.write_text('{"id": "00000", "prompt": "a cat"}\n[1, 2]\n')
    with pytest.raises(StudySetupError, match=r"p.jsonl, record 2: expected a prompt text or an object"):
        create_app({**settings, "prompts": str(prompts)})
    configs = Path(__file__).resolve().parents[1] / "configs"
    argv = ["links", "--config-dir", str(configs), f"db={bad_db}"]
    argv += [f"methods.{m}={d}" for m, d in settings["methods"].items()]
    assert main(argv + [f"prompts={settings['prompts']}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not a usable study database") and len(err.strip().splitlines()) == 1


def test_setup_errors_are_one_clear_line(settings, demo, tmp_path):
    with pytest.raises(StudySetupError, match="method folder not found: .*nowhere"):
        create_app({**settings, "methods": {"a": str(tmp_path / "nowhere")}})
    with pytest.raises(ValueError, match="secret in the config differs"):
        create_app(settings)
        create_app({**settings, "secret": "another"})
    bare = build_demo_study(tmp_path / "bare", ["m"], num_examples=1, size=8)
    Path(bare["methods"]["m"], "00000", "meta.json").write_text("{}")
    with pytest.raises(StudySetupError, match="no prompt for example '00000'"):
        create_app({**settings, "methods": bare["methods"], "prompts": None, "db": str(tmp_path / "b.db")})


def test_prompt_file_in_the_eval_format_wins_over_meta(settings, demo, tmp_path):
    lines = [{"id": "00001", "prompt": "A kite over a lake", "fg_prompt": "A kite", "bg_prompt": "a lake"}]
    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    # require_every_prompt=False: the prompt file only supplies texts (True: the study is its prompts)
    app = create_app({**settings, "prompts": str(prompt_file), "require_every_prompt": False})
    study = app.extensions["study"]
    ex = study.catalog.examples["00001"]
    assert (ex.prompt, ex.foreground_prompt, ex.background_prompt) == (
        "A kite over a lake",
        "A kite",
        "a lake",
    )
    assert (
        study.catalog.examples["00000"].prompt
        == json.loads(Path(demo["prompts"]).read_text())["00000"]["prompt"]
    )
    # The pipeline's own meta.json: prompt plus a list of foreground prompts, no prompt file.
    run = build_demo_study(tmp_path / "run", ["m"], num_examples=1, size=8)
    meta = {"prompt": "A bird flying at sunset", "foreground_prompts": ["A bird flying"], "seed": 3}
    Path(run["methods"]["m"], "00000", "meta.json").write_text(json.dumps(meta))
    app = create_app({**settings, "methods": run["methods"], "prompts": None, "db": str(tmp_path / "r.db")})
    ex = app.extensions["study"].catalog.examples["00000"]
    assert (ex.prompt, ex.foreground_prompt, ex.background_prompt) == (
        "A bird flying at sunset",
        "A bird flying",
        "",
    )


def test_cli_composes_the_study_config(demo, tmp_path, capsys):
    from layeringdiff.study.__main__ import main

    configs = Path(__file__).resolve().parents[1] / "configs"
    argv = ["links", "--config-dir", str(configs), f"db={tmp_path / 'cli.db'}", "participants=2"]
    # the default prompts are the 15 study prompts (tests/test_study_defaults.py)
    argv += [f"prompts={demo['prompts']}"]
    argv += [f"methods.{m}={d}" for m, d in demo["methods"].items()]
    token_file = tmp_path / "admin.token"
    token_file.write_text("xyz-admin-token\n")
    # on the command line the token would show in the process list: refused in one line
    assert main(argv + ["admin_token=xyz-admin-token"]) == 2
    assert "admin_token on the command line" in capsys.readouterr().err
    assert main(argv + [f"admin_token_file={token_file}"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("p01: http://127.0.0.1:5000/p/")
    assert (
        lines[-1] == f"admin: http://127.0.0.1:5000/admin (sign in with the token from the file {token_file})"
    )
    assert "xyz-admin-token" not in out  # never printed
    assert main(["links", "--config-dir", str(configs), f"methods.x={tmp_path / 'none'}"]) == 2
    assert "method folder not found" in capsys.readouterr().err
