"""The checked-in OpenAPI document, and a check of a real response against it."""

from functools import cache
from pathlib import Path

import yaml
from openapi_schema_validator import OAS31Validator

SPEC_PATH = Path(__file__).resolve().parents[2] / "internal_api" / "openapi.yaml"


@cache
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def assert_matches_spec(response, path: str, method: str) -> None:
    """`response`'s JSON is what the document promises for `path`/`method` and its status."""
    operation = spec()["paths"][path][method]
    answer = operation["responses"][str(response.status_code)]
    if "$ref" in answer:
        answer = spec()["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"]["application/json"]["schema"]
    root = {**spec(), **schema}  # the document as root, so the schema's $refs resolve
    OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER).validate(response.json())
