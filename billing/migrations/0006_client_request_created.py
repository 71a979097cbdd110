"""An index for retention on a table written all the time: built CONCURRENTLY on PostgreSQL, so
that viewers' money mutations are not held up while it is built (a failed build leaves an
INVALID index: drop it and migrate again)."""

from django.db import migrations, models

INDEX = models.Index(fields=["created_at"], name="client_request_created")


def _concurrently(schema_editor) -> dict:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def add_index(apps, schema_editor):
    schema_editor.add_index(apps.get_model("billing", "ClientRequest"), INDEX, **_concurrently(schema_editor))


def remove_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("billing", "ClientRequest"), INDEX, **_concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("billing", "0005_renewal_notice_amount"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="clientrequest", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, remove_index)],
        ),
    ]
