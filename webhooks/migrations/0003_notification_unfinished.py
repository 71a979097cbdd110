"""The janitor's index of unfinished notifications, built CONCURRENTLY on PostgreSQL so that
YooKassa's notifications keep being stored while it is built (a failed build leaves an INVALID
index: drop it and migrate again)."""

from django.db import migrations, models

INDEX = models.Index(condition=models.Q(outcome="received"), fields=["received_at"], name="notification_unfinished")


def _concurrently(schema_editor) -> dict:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def add_index(apps, schema_editor):
    schema_editor.add_index(apps.get_model("webhooks", "YooKassaNotification"), INDEX, **_concurrently(schema_editor))


def remove_index(apps, schema_editor):
    model = apps.get_model("webhooks", "YooKassaNotification")
    schema_editor.remove_index(model, INDEX, **_concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0002_untrusted_tally_and_failed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="yookassanotification", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, remove_index)],
        ),
    ]
