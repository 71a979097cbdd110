"""Untrusted notifications' samples move to a table of their own, written once: the tally's row,
rewritten by every request (and every 429), keeps only counters."""

from django.db import migrations, models


def copy_samples(apps, schema_editor):
    tally = apps.get_model("webhooks", "UntrustedNotificationTally")
    sample = apps.get_model("webhooks", "UntrustedNotificationSample")
    rows = tally.objects.exclude(sample_body="", sample_remote_addr=None).iterator(chunk_size=1000)
    sample.objects.bulk_create(
        (
            sample(
                source_network=row.source_network,
                window_start=row.window_start,
                remote_addr=row.sample_remote_addr,
                body=row.sample_body,
            )
            for row in rows
        ),
        batch_size=1000,
        ignore_conflicts=True,
    )


def copy_samples_back(apps, schema_editor):
    tally = apps.get_model("webhooks", "UntrustedNotificationTally")
    sample = apps.get_model("webhooks", "UntrustedNotificationSample")
    for row in sample.objects.iterator(chunk_size=1000):
        tally.objects.filter(source_network=row.source_network, window_start=row.window_start).update(
            sample_remote_addr=row.remote_addr, sample_body=row.body
        )


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0003_notification_unfinished"),
    ]

    operations = [
        migrations.CreateModel(
            name="UntrustedNotificationSample",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("source_network", models.CharField(max_length=64)),
                ("window_start", models.DateTimeField()),
                (
                    "remote_addr",
                    models.GenericIPAddressField(blank=True, help_text="The first one's address.", null=True),
                ),
                ("body", models.TextField(blank=True, help_text="The start of the first one's body.")),
            ],
            options={
                "verbose_name": "untrusted notification sample",
                "ordering": ["-window_start", "source_network"],
                "indexes": [models.Index(fields=["window_start"], name="untrusted_sample_window")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("source_network", "window_start"), name="untrusted_sample_one_per_window"
                    )
                ],
            },
        ),
        migrations.RunPython(copy_samples, copy_samples_back),
        migrations.RemoveField(model_name="untrustednotificationtally", name="sample_body"),
        migrations.RemoveField(model_name="untrustednotificationtally", name="sample_remote_addr"),
    ]
