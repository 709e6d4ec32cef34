"""Request bodies, named by role. Types are strict and unknown fields are
refused (400); what a value means (a known kind, a live holder, a valid
selector) is checked by the rules, which answer 404 or 422."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# A map from kind to selectors; the kinds themselves are checked by the rules.
Grants = dict[str, list[str]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ResourcePut(Strict):
    description: str | None = None


class CatalogSync(Strict):
    kind: str
    names: list[str]
    retire_missing: bool = False


class AccessGroupCreate(Strict):
    name: str
    description: str | None = None
    grants: Grants | None = None


class AccessGroupUpdate(Strict):
    name: str | None = None
    description: str | None = None
    add: Grants | None = None
    remove: Grants | None = None


class TeamCreate(Strict):
    name: str
    access_groups: list[str] | None = None
    grants: Grants | None = None


class TeamUpdate(Strict):
    name: str | None = None
    add: Grants | None = None
    remove: Grants | None = None


class KeyCreate(Strict):
    alias: str
    team_id: str | None = None
    access_groups: list[str] | None = None
    grants: Grants | None = None
    restrict: Grants | None = None
    expires_at: str | None = None


class KeyUpdate(Strict):
    """`restrict` and `expires_at` set to null clear them; left out, they stay."""

    alias: str | None = None
    add: Grants | None = None
    remove: Grants | None = None
    restrict: Grants | None = None
    expires_at: str | None = None


class CheckRequest(Strict):
    key_id: str | None = None
    key: str | None = None
    kind: str
    name: str
    at: str | None = None
    position: int | None = None


class BulkCheckRequest(Strict):
    checks: list[CheckRequest]


class AdminTokenCreate(Strict):
    name: str
    role: str
