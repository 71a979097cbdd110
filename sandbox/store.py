"""The sandbox's state in SQLite: payments, refunds, saved methods, idempotence records and the
notification outbox. One connection behind one lock: every API operation runs as a single
serialized transaction, which is what makes concurrent requests with one Idempotence-Key safe.
"""

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    captured_at TEXT,
    method_type TEXT,
    deadline TEXT,
    object TEXT NOT NULL,
    internal TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_deadline ON payments (deadline) WHERE deadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    payment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    object TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_payment ON refunds (payment_id);
CREATE TABLE IF NOT EXISTS payment_methods (
    id TEXT PRIMARY KEY,
    object TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotence (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    object_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL,
    burst TEXT,
    hold_group TEXT,
    last_result TEXT,
    created_at TEXT NOT NULL,
    emitted_at REAL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (state, due_at);
"""
# Columns added since a state file may have been written: (table, column, type).
_ADDED_COLUMNS = [("notifications", "emitted_at", "REAL")]


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: dict
    created_at: str


@dataclass(frozen=True)
class Notification:
    id: int
    event: str
    object_id: str
    body: dict
    state: str
    attempts: int
    due_at: float | None
    burst: str | None
    hold_group: str | None
    last_result: str | None
    created_at: str
    # When the event happened, on the delivery clock: redeliveries are scheduled from it.
    emitted_at: float | None


class Store:
    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A serialized unit of work; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: tuple | list = ()) -> int:
        with self._lock:
            return self._db.execute(sql, params).lastrowid or 0

    def reset(self) -> None:
        with self.transaction():
            for table in ("payments", "refunds", "payment_methods", "idempotence", "notifications"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # --- payments --------------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> tuple[dict, dict] | None:
        rows = self._query("SELECT object, internal FROM payments WHERE id = ?", (payment_id,))
        if not rows:
            return None
        return json.loads(rows[0]["object"]), json.loads(rows[0]["internal"])

    def save_payment(self, payment: dict, internal: dict, *, deadline: str | None) -> None:
        method = payment.get("payment_method") or {}
        self._execute(
            """
            INSERT INTO payments (id, status, created_at, captured_at, method_type, deadline, object, internal)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET status = excluded.status, captured_at = excluded.captured_at,
                method_type = excluded.method_type, deadline = excluded.deadline,
                object = excluded.object, internal = excluded.internal
            """,
            (
                payment["id"],
                payment["status"],
                payment["created_at"],
                payment.get("captured_at"),
                method.get("type"),
                deadline,
                json.dumps(payment),
                json.dumps(internal),
            ),
        )

    def list_payments(
        self, filters: list[tuple[str, str, str]], *, before_seq: int | None, limit: int
    ) -> list[tuple[int, dict]]:
        return self._list("payments", filters, before_seq=before_seq, limit=limit)

    def payments_past_deadline(self, now: str) -> list[str]:
        rows = self._query("SELECT id FROM payments WHERE deadline IS NOT NULL AND deadline <= ?", (now,))
        return [row["id"] for row in rows]

    def recent_payments(self, limit: int) -> list[dict]:
        rows = self._query("SELECT object FROM payments ORDER BY seq DESC LIMIT ?", (limit,))
        return [json.loads(row["object"]) for row in rows]

    def count_payments(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM payments")[0]["n"]

    # --- refunds ---------------------------------------------------------------------------

    def get_refund(self, refund_id: str) -> dict | None:
        rows = self._query("SELECT object FROM refunds WHERE id = ?", (refund_id,))
        return json.loads(rows[0]["object"]) if rows else None

    def save_refund(self, refund: dict) -> None:
        self._execute(
            """
            INSERT INTO refunds (id, payment_id, status, created_at, object) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET status = excluded.status, object = excluded.object
            """,
            (refund["id"], refund["payment_id"], refund["status"], refund["created_at"], json.dumps(refund)),
        )

    def refunds_of_payment(self, payment_id: str) -> list[dict]:
        rows = self._query("SELECT object FROM refunds WHERE payment_id = ? ORDER BY seq", (payment_id,))
        return [json.loads(row["object"]) for row in rows]

    def list_refunds(
        self, filters: list[tuple[str, str, str]], *, before_seq: int | None, limit: int
    ) -> list[tuple[int, dict]]:
        return self._list("refunds", filters, before_seq=before_seq, limit=limit)

    def count_refunds(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM refunds")[0]["n"]

    def _list(
        self, table: str, filters: list[tuple[str, str, str]], *, before_seq: int | None, limit: int
    ) -> list[tuple[int, dict]]:
        """Newest first; `filters` are (column, operator, value) built by the emulator from a fixed set."""
        clauses, params = [], []
        for column, operator, value in filters:
            clauses.append(f"{column} {operator} ?")
            params.append(value)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT seq, object FROM {table} {where} ORDER BY seq DESC LIMIT ?",  # noqa: S608 - see docstring
            [*params, limit],
        )
        return [(row["seq"], json.loads(row["object"])) for row in rows]

    # --- saved payment methods -------------------------------------------------------------

    def get_payment_method(self, method_id: str) -> dict | None:
        rows = self._query("SELECT object FROM payment_methods WHERE id = ?", (method_id,))
        return json.loads(rows[0]["object"]) if rows else None

    def save_payment_method(self, method: dict) -> None:
        self._execute(
            "INSERT INTO payment_methods (id, object) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET object = excluded.object",
            (method["id"], json.dumps(method)),
        )

    # --- idempotence -----------------------------------------------------------------------

    def get_response(self, key: str) -> StoredResponse | None:
        rows = self._query("SELECT fingerprint, status, body, created_at FROM idempotence WHERE key = ?", (key,))
        if not rows:
            return None
        row = rows[0]
        return StoredResponse(row["fingerprint"], row["status"], json.loads(row["body"]), row["created_at"])

    def save_response(self, key: str, response: StoredResponse) -> None:
        self._execute(
            "INSERT OR REPLACE INTO idempotence (key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (key, response.fingerprint, response.status, json.dumps(response.body), response.created_at),
        )

    # --- notification outbox ---------------------------------------------------------------

    def add_notification(
        self,
        *,
        event: str,
        object_id: str,
        body: dict,
        state: str,
        due_at: float | None,
        created_at: str,
        emitted_at: float,
        burst: str | None = None,
        hold_group: str | None = None,
    ) -> int:
        return self._execute(
            "INSERT INTO notifications "
            "(event, object_id, body, state, due_at, burst, hold_group, created_at, emitted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event, object_id, json.dumps(body), state, due_at, burst, hold_group, created_at, emitted_at),
        )

    def notifications(self, *, state: str | None = None, hold_group: str | None = None) -> list[Notification]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if hold_group is not None:
            clauses.append("hold_group = ?")
            params.append(hold_group)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM notifications {where} ORDER BY id", params)  # noqa: S608
        return [_notification(row) for row in rows]

    def held_groups(self) -> list[str]:
        rows = self._query("SELECT DISTINCT hold_group FROM notifications WHERE state = 'held' ORDER BY hold_group")
        return [row["hold_group"] for row in rows]

    def claim_due_notifications(self, now: float, limit: int) -> list[Notification]:
        """Move due notifications to `sending` so that no other pass picks them again."""
        with self.transaction():
            rows = self._query(
                "SELECT * FROM notifications WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?",
                (now, limit),
            )
            if rows:
                ids = [row["id"] for row in rows]
                marks = ",".join("?" * len(ids))
                self._execute(f"UPDATE notifications SET state = 'sending' WHERE id IN ({marks})", ids)  # noqa: S608
        return [_notification(row) for row in rows]

    def update_notification(
        self, notification_id: int, *, state: str, attempts: int, due_at: float | None, last_result: str | None
    ) -> None:
        self._execute(
            "UPDATE notifications SET state = ?, attempts = ?, due_at = ?, last_result = ? WHERE id = ?",
            (state, attempts, due_at, last_result, notification_id),
        )

    def release_notifications(self, schedule: list[tuple[int, float]]) -> None:
        with self.transaction():
            for notification_id, due_at in schedule:
                self._execute(
                    "UPDATE notifications SET state = 'pending', due_at = ? WHERE id = ?", (due_at, notification_id)
                )

    def next_notification_due(self) -> float | None:
        rows = self._query("SELECT MIN(due_at) AS due FROM notifications WHERE state = 'pending'")
        return rows[0]["due"]

    def requeue_interrupted_notifications(self) -> None:
        """After a restart, deliveries that were under way are sent again (at least once)."""
        self._execute("UPDATE notifications SET state = 'pending' WHERE state = 'sending'")


def _notification(row: sqlite3.Row) -> Notification:
    return Notification(
        id=row["id"],
        event=row["event"],
        object_id=row["object_id"],
        body=json.loads(row["body"]),
        state=row["state"],
        attempts=row["attempts"],
        due_at=row["due_at"],
        burst=row["burst"],
        hold_group=row["hold_group"],
        last_result=row["last_result"],
        created_at=row["created_at"],
        emitted_at=row["emitted_at"],
    )
