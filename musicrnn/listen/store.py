"""The ratings in SQLite: one transaction per submission, one row per (participant, clip).

Each call opens its own connection (the server answers on several threads; a sqlite3 connection is not
shared between threads). The journal is a write-ahead log with `synchronous=FULL`: a rating is on disk
when its request is answered, so a server killed right after loses nothing. Concurrent writers wait for
each other (`timeout`) instead of failing with "database is locked".
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ASPECTS = ("harmony", "creativity", "coherence", "overall")
GUESSES = ("human", "machine")
LOWEST, HIGHEST = 1, 5

_SCORE_COLUMNS = ",\n".join(f"    {a} INTEGER NOT NULL CHECK ({a} BETWEEN {LOWEST} AND {HIGHEST})" for a in ASPECTS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    clip_order TEXT NOT NULL,  -- JSON list of clip ids: this listener's own random order
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    participant_id TEXT NOT NULL REFERENCES participants (id),
    clip_id TEXT NOT NULL,
{_SCORE_COLUMNS},
    guess TEXT CHECK (guess IN ('human', 'machine')),  -- NULL: not asked, or "not sure"
    submitted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revisions INTEGER NOT NULL DEFAULT 1,
    UNIQUE (participant_id, clip_id)
);
"""


@dataclass(frozen=True)
class Rating:
    participant_id: str
    clip_id: str
    harmony: int
    creativity: int
    coherence: int
    overall: int
    guess: str | None = None

    def score(self, aspect: str) -> int:
        return getattr(self, aspect)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RatingStore:
    def __init__(self, path: str | os.PathLike, *, timeout_seconds: float = 30.0):
        self.path = Path(path)
        self.timeout_seconds = timeout_seconds
        with self._transaction() as db:
            db.executescript(SCHEMA)
        with closing(sqlite3.connect(self.path)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection whose `with` block is one transaction: committed at the end, rolled back on error."""
        with closing(sqlite3.connect(self.path, timeout=self.timeout_seconds)) as db:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                yield db

    def add_participant(self, clip_order: list[str]) -> str:
        participant_id = "p-" + secrets.token_hex(8)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO participants (id, clip_order, created_at) VALUES (?, ?, ?)",
                (participant_id, json.dumps(clip_order), _now()),
            )
        return participant_id

    def clip_order(self, participant_id: str) -> list[str] | None:
        """The participant's order of clips; None for an unknown participant."""
        with self._transaction() as db:
            row = db.execute("SELECT clip_order FROM participants WHERE id = ?", (participant_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save(self, rating: Rating) -> int:
        """Store one rating, replacing the participant's earlier rating of the same clip; returns how
        many clips the participant has rated."""
        now = _now()
        columns = ("participant_id", "clip_id", *ASPECTS, "guess")
        values = tuple(getattr(rating, c) for c in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*ASPECTS, "guess"))
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO ratings ({', '.join(columns)}, submitted_at, updated_at)"
                f" VALUES ({', '.join('?' * len(columns))}, ?, ?)"
                f" ON CONFLICT (participant_id, clip_id) DO UPDATE SET {updates},"
                " updated_at = excluded.updated_at, revisions = revisions + 1",
                (*values, now, now),
            )
            (rated,) = db.execute(
                "SELECT COUNT(*) FROM ratings WHERE participant_id = ?", (rating.participant_id,)
            ).fetchone()
        return rated

    def ratings(self, participant_id: str | None = None) -> list[Rating]:
        """Every stored rating (or one participant's), in the order they were first submitted."""
        columns = ("participant_id", "clip_id", *ASPECTS, "guess")
        query = f"SELECT {', '.join(columns)} FROM ratings"
        if participant_id is not None:
            query += " WHERE participant_id = ?"
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY rowid", () if participant_id is None else (participant_id,)).fetchall()
        return [Rating(*row) for row in rows]

    def participant_count(self) -> int:
        with self._transaction() as db:
            return db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
