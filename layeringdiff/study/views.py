"""Pages and endpoints of the study server.

Participant pages: ``/p/<token>`` (welcome, resume), ``/p/<token>/<pos>`` (one item: prompt, the
three layers, 1-5 choices per layer and criterion), ``/p/<token>/done``. Every answer is saved
as soon as it is clicked (``POST /api/rate``, JSON) and again when the page's form is sent, so
closing the browser loses nothing. Images: ``/img/<item_id>/<layer>.png`` (opaque ids only).
Admin: ``/admin`` and ``/admin/ratings.csv``, for a request carrying the admin token in the
``X-Admin-Token`` (or ``Authorization: Bearer``) header, or a browser signed in through the form
on ``/admin`` (``POST /admin/login`` sets a session cookie; ``POST /admin/logout`` ends it). The
token is never accepted in a URL (it would land in access logs and browser history).
Refused answers get HTTP 400 with the reason (JSON ``{"error": ...}`` from the API).
"""

from __future__ import annotations

import csv
import hmac
import io
import logging

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from layeringdiff.study import CRITERIA, RATED_IMAGES, SCORES
from layeringdiff.study.app import RatingError, Study, admin_session_value

log = logging.getLogger(__name__)
bp = Blueprint("study", __name__, static_folder="static", static_url_path="/static")

LAYER_TITLES = {"foreground": "Foreground", "background": "Background", "composite": "Composite"}
CRITERION_TITLES = {
    "text_alignment": ("Text alignment", "How well does this layer match the text?"),
    "image_quality": ("Image quality", "How good does this layer look (realism, detail, clean edges)?"),
}
SCORE_LABELS = {1: "1 poor", 2: "2", 3: "3", 4: "4", 5: "5 excellent"}
QUESTIONS = len(RATED_IMAGES) * len(CRITERIA)
# pages use only their own stylesheet, script and images; no framing, no foreign form targets
CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def study() -> Study:
    return current_app.extensions["study"]


@bp.errorhandler(RatingError)
def refused(err: RatingError):
    if request.path.startswith("/api/"):
        return jsonify(error=str(err)), 400
    return render_template("message.html", title="Answer refused", message=str(err)), 400


@bp.after_app_request
def headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Content-Security-Policy"] = CSP
    return resp


def _participant(token: str) -> Study:
    s = study()
    if token not in s.participants:
        abort(
            Response(
                render_template("message.html", title="Unknown link", message="This link is not valid."), 404
            )
        )
    return s


def _next_position(s: Study, token: str, after: int = 0) -> int | None:
    """1-based position of the first unfinished item after ``after`` (wrapping), None when all are done."""
    answers = s.answers(token)
    order = s.order(token)
    for pos in list(range(after + 1, len(order) + 1)) + list(range(1, after + 1)):
        if len(answers[order[pos - 1]]) < QUESTIONS:
            return pos
    return None


@bp.get("/")
def index():
    return render_template(
        "message.html", title=study().settings.title, message="Please open the personal link you were given."
    )


@bp.get("/p/<token>")
def start(token: str):
    s = _participant(token)
    answers = s.answers(token)
    done = sum(len(a) == QUESTIONS for a in answers.values())
    return render_template(
        "start.html",
        title=s.settings.title,
        token=token,
        total=len(answers),
        done=done,
        started=any(answers.values()),
        next_pos=_next_position(s, token),
    )


def _render_item(s: Study, token: str, pos: int, notice: str = "", form_answers: dict | None = None):
    order = s.order(token)
    item = s.catalog.items[order[pos - 1]]
    example = s.catalog.examples[item.example]
    saved = s.answers(token)[item.item_id]
    chosen = {f"{layer}__{crit}": score for (layer, crit), score in saved.items()}
    chosen.update(form_answers or {})
    layer_text = {
        "foreground": example.foreground_prompt,
        "background": example.background_prompt,
        "composite": "",
    }
    return render_template(
        "item.html",
        title=s.settings.title,
        token=token,
        pos=pos,
        total=len(order),
        item_id=item.item_id,
        prompt=example.prompt,
        layers=[(name, LAYER_TITLES[name], layer_text[name]) for name in RATED_IMAGES],
        criteria=[(name, *CRITERION_TITLES[name]) for name in CRITERIA],
        scores=[(v, SCORE_LABELS[v]) for v in SCORES],
        chosen=chosen,
        notice=notice,
    )


@bp.get("/p/<token>/<int:pos>")
def item(token: str, pos: int):
    s = _participant(token)
    if not 1 <= pos <= len(s.order(token)):
        abort(404)
    return _render_item(s, token, pos)


@bp.post("/p/<token>/<int:pos>")
def submit(token: str, pos: int):
    s = _participant(token)
    order = s.order(token)
    if not 1 <= pos <= len(order):
        abort(404)
    item_id = request.form.get("item", "")
    if item_id != order[pos - 1]:
        raise RatingError(f"item '{item_id}' is not the item at position {pos}; reload the page")
    given = {
        (layer, crit): request.form[f"{layer}__{crit}"]
        for layer in RATED_IMAGES
        for crit in CRITERIA
        if request.form.get(f"{layer}__{crit}")
    }
    s.rate(token, [(item_id, layer, crit, score) for (layer, crit), score in given.items()])
    if len(s.answers(token)[item_id]) < QUESTIONS:
        return _render_item(s, token, pos, notice="Please answer every question on this page.")
    nxt = _next_position(s, token, after=pos)
    return redirect(
        url_for("study.item", token=token, pos=nxt) if nxt else url_for("study.done", token=token), 303
    )


@bp.get("/p/<token>/done")
def done(token: str):
    s = _participant(token)
    nxt = _next_position(s, token)
    return render_template(
        "done.html", title=s.settings.title, token=token, total=len(s.order(token)), next_pos=nxt
    )


@bp.post("/api/rate")
def rate():
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        raise RatingError("expected a JSON object with token, item, layer, criterion and score")
    missing = [k for k in ("token", "item", "layer", "criterion", "score") if data.get(k) in (None, "")]
    if missing:
        raise RatingError(f"missing field(s): {', '.join(missing)}")
    s = study()
    token = str(data["token"])
    s.rate(token, [(str(data["item"]), str(data["layer"]), str(data["criterion"]), data["score"])])
    answers = s.answers(token)
    return jsonify(
        saved=True,
        item_answers=len(answers[str(data["item"])]),
        items_done=sum(len(a) == QUESTIONS for a in answers.values()),
        items_total=len(answers),
    )


@bp.get("/img/<item_id>/<layer>.png")
def image(item_id: str, layer: str):
    s = study()
    if item_id not in s.catalog.items or layer not in RATED_IMAGES:
        abort(404)
    try:
        data = s.image(item_id, layer)
    except ValueError as e:  # ImageReadError names the file, whose path may name the method: log it only
        log.error("item %s, %s: %s", item_id, layer, e)
        return Response("image unavailable", 500, mimetype="text/plain")
    resp = Response(data, mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=86400"
    return resp


def _given_admin_token() -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-Admin-Token", "")


def _is_admin(s: Study) -> bool:
    given = _given_admin_token()
    if given and hmac.compare_digest(given.encode(), s.admin_token.encode()):
        return True
    expected = admin_session_value(s.blinder_secret, s.admin_token)
    return hmac.compare_digest(str(session.get("admin", "")).encode(), expected.encode())


def _login_page(notice: str = "", status: int = 403):
    body = render_template("admin_login.html", title=study().settings.title, notice=notice)
    return Response(body, status, mimetype="text/html")


def _require_admin() -> Study:
    s = study()
    if not _is_admin(s):
        if request.path == "/admin":
            notice = (
                "The admin token is not accepted in a URL; sign in below." if "token" in request.args else ""
            )
            abort(_login_page(notice))
        abort(Response("admin sign-in required (X-Admin-Token header or /admin)", 403, mimetype="text/plain"))
    return s


@bp.post("/admin/login")
def admin_login():
    s = study()
    given = request.form.get("token", "").strip()
    if not hmac.compare_digest(given.encode(), s.admin_token.encode()):
        log.warning("admin sign-in refused from %s", request.remote_addr)  # never the token
        return _login_page("Wrong admin token.")
    session.clear()
    session["admin"] = admin_session_value(s.blinder_secret, s.admin_token)
    return redirect(url_for("study.admin"), 303)


@bp.post("/admin/logout")
def admin_logout():
    session.clear()
    return redirect(url_for("study.admin"), 303)


@bp.get("/admin")
def admin():
    s = _require_admin()
    rows = []
    for token, label, n, last in s.store.progress():
        if token not in s.participants:
            continue  # a participant from an earlier config: their ratings stay in the database
        total = len(s.order(token)) * QUESTIONS
        rows.append(
            dict(
                label=label,
                link=url_for("study.start", token=token, _external=True),
                n=n,
                total=total,
                last=last,
            )
        )
    total = sum(r["total"] for r in rows)
    answered = sum(min(r["n"], r["total"]) for r in rows)
    return render_template(
        "admin.html",
        title=s.settings.title,
        rows=rows,
        answered=answered,
        total=total,
        n_examples=len(s.catalog.examples),
        n_methods=len(s.catalog.method_ids),
        csv_url=url_for("study.admin_csv"),
    )


@bp.get("/admin/ratings.csv")
def admin_csv():
    s = _require_admin()
    header, rows = s.store.export()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    resp = Response(buf.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = "attachment; filename=ratings.csv"
    return resp
