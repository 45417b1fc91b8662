"""SQLite storage of a study: one row per rating, each answer committed atomically.

The database (WAL journal, so readers never block the writer) holds:

- ``meta``: the HMAC secret and creation time;
- ``methods``: blinded ``method_id`` -> method name (only aggregation and the admin export read it);
- ``participants``: token and label;
- ``ratings``: participant, example, method_id, layer, criterion, score (1-5), created_at and
  updated_at (UTC ISO 8601). A participant has one rating per (example, method, layer,
  criterion); answering again replaces the score.

Every call opens its own short-lived connection, so the store is safe to share between the
threads of a threaded server; concurrent writers wait on SQLite's lock (``busy_timeout``).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from layeringdiff.errors import ConfigError, MissingFileError
from layeringdiff.study import CRITERIA, RATED_IMAGES, SCORES

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS methods (method_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS participants (
  token TEXT PRIMARY KEY, label TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ratings (
  participant TEXT NOT NULL REFERENCES participants(token),
  example TEXT NOT NULL,
  method_id TEXT NOT NULL REFERENCES methods(method_id),
  layer TEXT NOT NULL CHECK (layer IN {RATED_IMAGES!r}),
  criterion TEXT NOT NULL CHECK (criterion IN {CRITERIA!r}),
  score INTEGER NOT NULL CHECK (score BETWEEN {min(SCORES)} AND {max(SCORES)}),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (participant, example, method_id, layer, criterion));
"""

RATING_COLUMNS = (
    "participant",
    "example",
    "method_id",
    "layer",
    "criterion",
    "score",
    "created_at",
    "updated_at",
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(path: str | Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the study database with foreign keys on and a generous busy timeout."""
    conn = sqlite3.connect(str(path), timeout=timeout)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class RatingStore:
    """The study database at ``path`` (created with its folder when missing).

    Args:
        path: SQLite file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(connect(self.path)) as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(SCHEMA)
                conn.commit()
        except sqlite3.DatabaseError as e:  # not SQLite, truncated, or a table of another shape
            raise ConfigError(f"not a usable study database: {self.path} ({e})") from None
        except OSError as e:
            raise ConfigError(f"cannot open the study database {self.path}: {e.strerror or e}") from None

    def _conn(self) -> closing[sqlite3.Connection]:
        return closing(connect(self.path))

    def setdefault(self, key: str, value: str) -> str:
        """The ``meta`` value of ``key``, stored as ``value`` on first use."""
        with self._conn() as conn, conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def secret(self, given: str | None = None) -> str:
        """The study's HMAC secret: stored on first use (``given`` or a fresh random one).

        Raises:
            ConfigError: ``given`` differs from the secret this database was created with.
        """
        self.setdefault("created_at", utc_now())
        stored = self.setdefault("secret", given or secrets.token_hex(32))
        if given and given != stored:
            raise ConfigError(
                f"the secret in the config differs from the one {self.path} was created with; "
                "blinded ids would no longer match its ratings (use the old secret or a new database)"
            )
        return stored

    def register(self, method_ids: dict[str, str], participants: dict[str, str]) -> None:
        """Record method name -> method_id and participant token -> label (idempotent)."""
        now = utc_now()
        with self._conn() as conn, conn:
            conn.executemany(
                "INSERT OR IGNORE INTO methods VALUES (?, ?)", [(i, m) for m, i in method_ids.items()]
            )
            conn.executemany(
                "INSERT OR IGNORE INTO participants VALUES (?, ?, ?)",
                [(t, label, now) for t, label in participants.items()],
            )

    def save(self, participant: str, ratings: Iterable[tuple[str, str, str, str, int]]) -> None:
        """Store (example, method_id, layer, criterion, score) answers in one transaction.

        Either every answer is stored or none is (the database's CHECKs refuse bad values).
        """
        now = utc_now()
        rows = [
            (participant, ex, mid, layer, crit, int(score), now, now)
            for ex, mid, layer, crit, score in ratings
        ]
        with self._conn() as conn, conn:
            conn.executemany(
                "INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (participant, example, method_id, layer, criterion) "
                "DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at",
                rows,
            )

    def answers(self, participant: str) -> dict[tuple[str, str], dict[tuple[str, str], int]]:
        """A participant's scores: (example, method_id) -> {(layer, criterion): score}."""
        out: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
        with self._conn() as conn:
            for ex, mid, layer, crit, score in conn.execute(
                "SELECT example, method_id, layer, criterion, score FROM ratings WHERE participant = ?",
                (participant,),
            ):
                out.setdefault((ex, mid), {})[(layer, crit)] = score
        return out

    def progress(self) -> list[tuple[str, str, int, str | None]]:
        """Per participant (by label): token, label, number of ratings, time of the last answer."""
        with self._conn() as conn:
            return conn.execute(
                "SELECT p.token, p.label, COUNT(r.score), MAX(r.updated_at) FROM participants p "
                "LEFT JOIN ratings r ON r.participant = p.token GROUP BY p.token ORDER BY p.label"
            ).fetchall()

    def export(self) -> tuple[list[str], list[tuple]]:
        """All ratings with the method name and participant label: (header, rows)."""
        with self._conn() as conn:
            cur = conn.execute(
                "SELECT p.label, r.participant, r.example, r.method_id, m.name, r.layer, r.criterion, r.score, "
                "r.created_at, r.updated_at FROM ratings r JOIN methods m USING (method_id) "
                "JOIN participants p ON p.token = r.participant "
                "ORDER BY p.label, r.example, m.name, r.layer, r.criterion"
            )
            return [d[0] if d[0] != "name" else "method" for d in cur.description], cur.fetchall()


def read_ratings(path: str | Path) -> list[dict]:
    """Every rating of a study database with its method name (for aggregation).

    Args:
        path: the study database.

    Raises:
        FileNotFoundError: no database at ``path``.
        ValueError: the file is not a study database.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"study database not found: {p}")
    try:
        with closing(connect(p)) as conn:
            cur = conn.execute(
                "SELECT r.participant, r.example, m.name, r.layer, r.criterion, r.score "
                "FROM ratings r JOIN methods m USING (method_id)"
            )
            keys = ("participant", "example", "method", "layer", "criterion", "score")
            return [dict(zip(keys, row)) for row in cur.fetchall()]
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"not a study database: {p} ({e})") from None
