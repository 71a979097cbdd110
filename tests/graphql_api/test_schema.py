from pathlib import Path

from graphql_api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_the_checked_in_schema_is_the_served_schema():
    """Regenerate with: manage.py export_schema graphql_api.schema:schema --path schema.graphql"""
    assert SCHEMA_FILE.read_text(encoding="utf-8").strip() == schema.as_str().strip()
