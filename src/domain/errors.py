"""Errors the rules raise. Each maps to one status and code of the API."""

from __future__ import annotations


class LedgerError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LedgerError):
    status, code = 400, "invalid_request"


class Unauthorized(LedgerError):
    status, code = 401, "unauthorized"


class Forbidden(LedgerError):
    status, code = 403, "forbidden"


class NotFound(LedgerError):
    status, code = 404, "not_found"


class NameTaken(LedgerError):
    status, code = 409, "name_taken"


class Conflict(LedgerError):
    status, code = 409, "conflict"


class IdempotencyMismatch(LedgerError):
    status, code = 409, "idempotency_mismatch"


class VersionMismatch(LedgerError):
    status, code = 412, "version_mismatch"


class TooLarge(LedgerError):
    status, code = 413, "too_large"


class UnknownResource(LedgerError):
    status, code = 422, "unknown_resource"


class RetiredResource(LedgerError):
    status, code = 422, "retired_resource"


class InvalidSelector(LedgerError):
    status, code = 422, "invalid_selector"


class NotReady(LedgerError):
    status, code = 503, "not_ready"
