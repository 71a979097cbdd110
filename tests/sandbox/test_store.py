"""The sandbox's state file across versions of the sandbox."""

import sqlite3

from sandbox.store import Store


def test_a_state_file_from_before_emitted_at_is_upgraded_and_keeps_its_notifications(tmp_path):
    path = tmp_path / "sandbox.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE notifications (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, "
            "object_id TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
            "due_at REAL, burst TEXT, hold_group TEXT, last_result TEXT, created_at TEXT NOT NULL)"
        )
        old.execute(
            "INSERT INTO notifications (event, object_id, body, state, due_at, created_at) "
            "VALUES ('payment.succeeded', 'p-1', '{}', 'pending', 1.0, '2026-01-01T00:00:00+00:00')"
        )
    old.close()

    store = Store(str(path))

    [kept] = store.notifications()
    assert kept.object_id == "p-1"
    assert kept.emitted_at is None
    store.add_notification(
        event="payment.canceled", object_id="p-2", body={}, state="pending", due_at=2.0, created_at="x", emitted_at=2.0
    )
    assert [n.emitted_at for n in store.notifications()] == [None, 2.0]
