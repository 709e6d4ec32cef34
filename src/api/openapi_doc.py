"""The OpenAPI document, with every status each route can answer.

FastAPI documents a route's success status and a 422 shaped as its own
validation error. This service answers bad input with 400 and every error
in one shape, so each operation's errors are documented here from what the
route is: signed in or not, with path values or not, a write or a question.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.answers import ANSWERS

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
MEANINGS = {
    "400": "Malformed or invalid input.",
    "401": "No token, an unknown one, or the wrong kind.",
    "403": "The token's role may not do this.",
    "404": "No such holder, resource or token.",
    "409": "A name taken, a conflict after retries, or a reused Idempotency-Key.",
    "412": "If-Match names another version.",
    "413": "The body is larger than the limit.",
    "422": "A selector or name the rules refuse.",
    "503": "The store cannot be reached, or min_position was not reached in time.",
}
REF = "#/components/schemas/{model}"
# Answers that are not JSON: the export file, and Prometheus' text format.
TEXT_ANSWERS = {
    ("get", "/v1/audit/export"): ("application/x-ndjson", "text/csv"),
    ("get", "/metrics"): ("text/plain",),
}
WRITES = {"post", "put", "patch", "delete"}
# POST routes that only ask; they change nothing.
QUESTIONS = {"/v1/check", "/v1/check/bulk", "/v1/audit/replay"}
# Routes that answer more than one success status.
ALSO_SUCCEED = {("put", "/v1/catalog/{kind}/{name}"): "200"}


def error_statuses(method: str, path: str) -> list[str]:
    if not path.startswith("/v1/"):
        return ["503"] if path == "/readyz" else []
    statuses = ["400", "401", "413", "503"]
    if path != "/v1/models":
        statuses += ["403", "404", "422"]
    if method in WRITES and path not in QUESTIONS:
        statuses += ["409", "412"]
    return sorted(statuses)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in error_statuses(method, path):
                responses[status] = {"description": MEANINGS[status], "content": error}
            also = ALSO_SUCCEED.get((method, path))
            if also is not None:
                responses[also] = {"description": "Successful Response"}
            describe_success(responses, ANSWERS.get((method, path)))
            if (method, path) in TEXT_ANSWERS:
                text = {"schema": {"type": "string"}}
                kinds = TEXT_ANSWERS[method, path]
                responses["200"]["content"] = {kind: text for kind in kinds}
    components = schema["components"]["schemas"]
    components.update(answer_schemas())
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def describe_success(responses: dict[str, Any], shape: type[BaseModel] | None) -> None:
    """Every 2xx answer with a body gets the shape of that body."""
    if shape is None:
        return
    content = {"application/json": {"schema": {"$ref": REF.format(model=shape.__name__)}}}
    for status, response in responses.items():
        if status.startswith("2") and status != "204":
            response["content"] = content


def answer_schemas() -> dict[str, Any]:
    shapes = [(shape, "serialization") for shape in set(ANSWERS.values())]
    _, found = models_json_schema(shapes, ref_template=REF)
    return dict(found.get("$defs", {}))


def use_documented_errors(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
