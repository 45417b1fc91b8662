"""The study server: settings, the runtime ``Study`` (catalog + store + orders), ``create_app``."""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import logging
import os
import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from layeringdiff.errors import UserError
from layeringdiff.study import CRITERIA, RATED_IMAGES, SCORES
from layeringdiff.study.catalog import Blinder, Item, StudySetupError, build_catalog
from layeringdiff.study.storage import RatingStore

log = logging.getLogger(__name__)


class RatingError(UserError, ValueError):
    """A submitted answer that is refused (unknown id, bad layer, criterion or score)."""


#: Environment variable holding the admin token (read when ``admin_token_file`` is not set).
ADMIN_TOKEN_ENV = "LAYERINGDIFF_STUDY_ADMIN_TOKEN"
#: Largest request body the server accepts (an answer page is well under 4 KiB).
MAX_REQUEST_BYTES = 64 * 1024


@dataclass
class StudySettings:
    """Everything ``configs/study.yaml`` sets; see that file for each key's meaning."""

    methods: dict[str, str]
    db: str
    prompts: str | None = None
    require_every_prompt: bool = True
    participants: int | list[str] = 24
    admin_token: str | None = None
    admin_token_file: str | None = None
    secret: str | None = None
    seed: int = 0
    items_per_participant: int | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    title: str = "Layered image study"
    image_cache: int = 64
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping) -> StudySettings:
        """Build from a (Omega)Conf mapping such as the composed ``configs/study.yaml``."""
        from omegaconf import DictConfig, OmegaConf

        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__ and k != "extra"}
        known["methods"] = {str(k): str(v) for k, v in (known.get("methods") or {}).items()}
        return cls(**known, extra=data)

    def __post_init__(self):
        # a YAML/Hydra value such as 12345 arrives as an int; the token is always text
        if self.admin_token is not None:
            self.admin_token = str(self.admin_token)

    def participant_labels(self) -> list[str]:
        if isinstance(self.participants, int) and not isinstance(self.participants, bool):
            if self.participants < 1:
                raise StudySetupError(f"participants must be >= 1, got {self.participants}")
            # Fixed-width labels: raising the count later keeps every existing label (and token).
            return [f"p{i:02d}" for i in range(1, self.participants + 1)]
        labels = [str(x) for x in self.participants]
        if not labels or len(set(labels)) != len(labels):
            raise StudySetupError(
                f"participants must be a count or a list of distinct labels, got {self.participants}"
            )
        return labels


class Study:
    """A running study: what to show, to whom, in which order, and where answers go.

    Args:
        settings: the study configuration.
    """

    def __init__(self, settings: StudySettings):
        self.settings = settings
        self.store = RatingStore(settings.db)
        self.blinder_secret = self.store.secret(settings.secret)
        self.blinder = Blinder(self.blinder_secret)
        self.catalog = build_catalog(
            settings.methods, self.blinder, settings.prompts, bool(settings.require_every_prompt)
        )
        self.participants = {self.blinder.participant_token(lb): lb for lb in settings.participant_labels()}
        self.store.register(self.catalog.method_ids, self.participants)
        self.admin_token, self.admin_token_source = resolve_admin_token(settings, self.store)
        self._item_ids = sorted(self.catalog.items)
        self.image = functools.lru_cache(maxsize=settings.image_cache)(self._encode_image)
        self._orders: dict[str, list[str]] = {}
        log.info(
            "study: %d examples x %d methods, %d participants, database %s",
            len(self.catalog.examples),
            len(self.catalog.method_ids),
            len(self.participants),
            self.store.path,
        )

    def order(self, token: str) -> list[str]:
        """The item ids a participant rates, in their own seeded random order (stable across restarts)."""
        if token not in self._orders:
            digest = hashlib.sha256(f"{self.settings.seed}\x00{token}".encode()).digest()
            ids = list(self._item_ids)
            random.Random(int.from_bytes(digest[:8], "big")).shuffle(ids)
            k = self.settings.items_per_participant
            self._orders[token] = ids[:k] if k else ids
        return self._orders[token]

    def check_participant(self, token: str) -> None:
        if token not in self.participants:
            raise RatingError("unknown participant token; use the link you were given")

    def item(self, item_id: str) -> Item:
        try:
            return self.catalog.items[item_id]
        except KeyError:
            raise RatingError(f"unknown item id '{item_id}'") from None

    def answers(self, token: str) -> dict[str, dict[tuple[str, str], int]]:
        """Item id -> {(layer, criterion): score} for one participant."""
        by_pair = self.store.answers(token)
        out = {}
        for iid in self.order(token):
            it = self.catalog.items[iid]
            out[iid] = by_pair.get((it.example, it.method_id), {})
        return out

    def validate(self, token: str, item_id: str, layer: str, criterion: str, score: object) -> tuple:
        """Check one answer and return the row to store: (example, method_id, layer, criterion, score).

        Raises:
            RatingError: with a message saying what is wrong.
        """
        self.check_participant(token)
        it = self.item(item_id)
        if item_id not in self.order(token):
            raise RatingError(f"item '{item_id}' is not assigned to this participant")
        if layer not in RATED_IMAGES:
            raise RatingError(f"unknown layer '{layer}' (expected one of {', '.join(RATED_IMAGES)})")
        if criterion not in CRITERIA:
            raise RatingError(f"unknown criterion '{criterion}' (expected one of {', '.join(CRITERIA)})")
        text = str(score).strip()
        # ASCII digits only: str.isdigit() accepts "²", which int() then refuses
        if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) not in SCORES:
            raise RatingError(
                f"score must be a whole number from {min(SCORES)} to {max(SCORES)}, got '{score}'"
            )
        return it.example, it.method_id, layer, criterion, int(text)

    def rate(self, token: str, answers: Sequence[tuple[str, str, str, object]]) -> None:
        """Validate (item_id, layer, criterion, score) answers, then store them all in one transaction."""
        rows = [self.validate(token, *a) for a in answers]
        if rows:
            self.store.save(token, rows)

    def _encode_image(self, item_id: str, layer: str) -> bytes:
        """A layer re-encoded as a plain PNG: no file name, text chunk or metadata reaches the browser."""
        from layeringdiff.images import open_image, to_rgb, to_rgba

        img = open_image(self.item(item_id).files[layer])
        img = to_rgba(img) if layer == "foreground" else to_rgb(img)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def _read_token_file(path: str) -> str:
    p = Path(path).expanduser()
    try:
        token = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise StudySetupError(f"cannot read admin_token_file {p}: {e.__class__.__name__}") from None
    if not token or len(token.splitlines()) != 1:
        raise StudySetupError(f"admin_token_file {p} must hold the token on one non-empty line")
    return token


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), through a rename."""
    from layeringdiff.files import temp_sibling

    tmp = temp_sibling(path)  # mkstemp: 0600, kept on purpose
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_admin_token(settings: StudySettings, store: RatingStore) -> tuple[str, str]:
    """The admin token and where it came from (a description that never contains the token).

    In order: ``admin_token`` (a config file or the Python API), ``admin_token_file``, the
    ``LAYERINGDIFF_STUDY_ADMIN_TOKEN`` environment variable, else a random token generated once,
    stored in the database and written to ``<db>.admin_token`` (mode 0600).
    """
    if settings.admin_token:
        return settings.admin_token, "the admin_token setting"
    if settings.admin_token_file:
        return _read_token_file(settings.admin_token_file), f"the file {settings.admin_token_file}"
    if os.environ.get(ADMIN_TOKEN_ENV, "").strip():
        return os.environ[ADMIN_TOKEN_ENV].strip(), f"${ADMIN_TOKEN_ENV}"
    token = store.setdefault("admin_token", secrets.token_urlsafe(18))
    path = store.path.with_name(store.path.name + ".admin_token")
    if not path.is_file() or path.read_text(encoding="utf-8").strip() != token:
        _write_private(path, token)
    return token, f"the file {path}"


def admin_session_value(secret: str, token: str) -> str:
    """What a signed-in admin's session cookie holds: changes when the token changes, never the token."""
    return hmac.new(secret.encode(), f"admin-session\x00{token}".encode(), "sha256").hexdigest()


def create_app(settings: StudySettings | Mapping) -> Flask:
    """The Flask app of a study (server-rendered pages, JSON answer endpoint, admin page).

    Args:
        settings: ``StudySettings`` or the composed study config.

    Raises:
        StudySetupError: folders, prompts or participants are wrong (one-line message).
    """
    from layeringdiff.study.views import bp

    if not isinstance(settings, StudySettings):
        settings = StudySettings.from_config(settings)
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"), static_folder=None)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    study = Study(settings)
    app.extensions["study"] = study
    # the session cookie only marks a signed-in admin; its key derives from the study's secret, so
    # a restart keeps the admin signed in
    app.secret_key = hmac.new(study.blinder_secret.encode(), b"flask-session", "sha256").hexdigest()
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SESSION_COOKIE_NAME="study_admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    app.register_blueprint(bp)
    return app
