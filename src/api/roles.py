"""Which roles reach which route: each route declares its roles once.

`admin` may do everything; `auditor` may read everything, audits, exports
and replays included; `gateway` may only ask the questions a gateway asks.
A compliance replay is a POST but only reads: it rebuilds the read models
into scratch tables beside the live ones and compares, changing nothing an
answer depends on, so auditors may run it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from api.auth import Caller
from api.http import caller
from domain.errors import Forbidden


class Allowed:
    """A route dependency: the caller must have one of these roles."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, signed_in: Caller = Depends(caller)) -> Caller:
        if signed_in.role not in self.roles:
            raise Forbidden(f"the {signed_in.role} role may not do this")
        return signed_in


def allow(*roles: str) -> list[Any]:
    return [Depends(Allowed(*roles))]


# Who may ask a gateway's questions; api.gateway_checks reads it too.
GATEWAY_ROLES = ("admin", "auditor", "gateway")

ADMINS = allow("admin")
READERS = allow("admin", "auditor")
GATEWAYS = allow(*GATEWAY_ROLES)
