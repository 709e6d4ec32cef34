"""What each route answers on success, as schemas for the OpenAPI document.

The routes build their answers as plain dicts (the presenters) and send them
through orjson; these models only describe them, so that clients and the
fuzzing test can hold every answer to its shape. Each forbids fields it does
not name: a field added to an answer must be added here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# kind -> selectors, for every kind.
GrantMap = dict[str, list[str]]


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourcePublic(Shape):
    kind: str
    name: str
    status: Literal["active", "retired"]
    description: str
    created_at: str
    updated_at: str


class ResourceWritten(ResourcePublic):
    position: int


class ResourcePage(Shape):
    items: list[ResourcePublic]
    next_cursor: str | None


class CatalogSynced(Shape):
    registered: int
    retired: int
    unchanged: int
    position: int


class AccessGroupPublic(Shape):
    id: str
    name: str
    description: str
    grants: GrantMap
    version: int
    created_at: str
    updated_at: str


class AccessGroupWritten(AccessGroupPublic):
    position: int


class AccessGroupPage(Shape):
    items: list[AccessGroupPublic]
    next_cursor: str | None


class KeyOfGroup(Shape):
    id: str
    alias: str


class TeamOfGroup(Shape):
    id: str
    name: str


class KeyViaTeam(KeyOfGroup):
    team_id: str


class AccessGroupUsage(Shape):
    keys: list[KeyOfGroup]
    teams: list[TeamOfGroup]
    keys_via_teams: list[KeyViaTeam]


class TeamPublic(Shape):
    id: str
    name: str
    access_groups: list[str]
    grants: GrantMap
    status: Literal["active", "blocked"]
    version: int
    created_at: str
    updated_at: str


class TeamWritten(TeamPublic):
    position: int


class TeamPage(Shape):
    items: list[TeamPublic]
    next_cursor: str | None


class KeyPublic(Shape):
    id: str
    alias: str
    team_id: str | None
    access_groups: list[str]
    grants: GrantMap
    restrict: GrantMap | None
    expires_at: str | None
    status: Literal["active", "blocked", "expired"]
    version: int
    created_at: str
    updated_at: str


class KeyWritten(KeyPublic):
    position: int
    # Only in the answer that creates the key or rotates its secret.
    secret: str | None = None


class KeyPage(Shape):
    items: list[KeyPublic]
    next_cursor: str | None


class Reason(Shape):
    source: str
    holder_id: str
    holder_name: str
    selector: str
    team_id: str | None = None


class Decision(Shape):
    allowed: bool
    reasons: list[Reason]
    denied_because: str | None
    position: int


class Decisions(Shape):
    results: list[Decision]
    position: int


WITHOUT_REASONS = "Absent when the request asks reasons=false."


class UsableResource(Shape):
    name: str
    reasons: list[Reason] = Field(default_factory=list, description=WITHOUT_REASONS)


class KeyAccess(Shape):
    key_id: str
    as_of: int
    resources: dict[str, list[UsableResource]]


class KeyThatCanUse(Shape):
    key_id: str
    alias: str
    reasons: list[Reason] = Field(default_factory=list, description=WITHOUT_REASONS)


class WhoCanUse(Shape):
    keys: list[KeyThatCanUse]
    next_cursor: str | None


class AuditEvent(Shape):
    position: int
    type: str
    holder: str
    at: str
    actor: str | None
    reason: str | None
    data: dict[str, Any]


class AuditEventPage(Shape):
    items: list[AuditEvent]
    next_after: int | None


class GrantInterval(Shape):
    key_id: str
    kind: str
    name: str
    granted_at: str
    granted_position: int
    revoked_at: str | None
    revoked_position: int | None
    ended_by: Literal["change", "expiry"] | None
    reasons: list[Reason]


class GrantIntervals(Shape):
    items: list[GrantInterval]


class TableDigests(Shape):
    live: str
    replayed: str
    matches: bool


class ReplayAnswer(Shape):
    events: int
    position: int
    digest: str
    live_digest: str
    matches: bool
    tables: dict[str, TableDigests]
    differences: list[dict[str, Any]]


class AdminTokenPublic(Shape):
    id: str
    name: str
    role: Literal["admin", "auditor", "gateway"]
    created_by: str
    version: int
    created_at: str


class AdminTokenIssued(AdminTokenPublic):
    position: int
    token: str


class AdminTokenPage(Shape):
    items: list[AdminTokenPublic]
    next_cursor: str | None


class ModelObject(Shape):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Shape):
    object: Literal["list"]
    data: list[ModelObject]


class Health(Shape):
    status: Literal["ok"]


class Readiness(Shape):
    status: Literal["ready"]
    position: int


# (method, path) -> the success answer's shape.
ANSWERS: dict[tuple[str, str], type[Shape]] = {
    ("get", "/healthz"): Health,
    ("get", "/readyz"): Readiness,
    ("get", "/v1/catalog"): ResourcePage,
    ("post", "/v1/catalog/sync"): CatalogSynced,
    ("get", "/v1/catalog/{kind}/{name}"): ResourcePublic,
    ("put", "/v1/catalog/{kind}/{name}"): ResourceWritten,
    ("delete", "/v1/catalog/{kind}/{name}"): ResourceWritten,
    ("post", "/v1/access-groups"): AccessGroupWritten,
    ("get", "/v1/access-groups"): AccessGroupPage,
    ("get", "/v1/access-groups/{group_id}"): AccessGroupPublic,
    ("patch", "/v1/access-groups/{group_id}"): AccessGroupWritten,
    ("get", "/v1/access-groups/{group_id}/usage"): AccessGroupUsage,
    ("post", "/v1/teams"): TeamWritten,
    ("get", "/v1/teams"): TeamPage,
    ("get", "/v1/teams/{team_id}"): TeamPublic,
    ("patch", "/v1/teams/{team_id}"): TeamWritten,
    ("put", "/v1/teams/{team_id}/access-groups/{group_id}"): TeamWritten,
    ("delete", "/v1/teams/{team_id}/access-groups/{group_id}"): TeamWritten,
    ("post", "/v1/teams/{team_id}/block"): TeamWritten,
    ("post", "/v1/teams/{team_id}/unblock"): TeamWritten,
    ("post", "/v1/keys"): KeyWritten,
    ("get", "/v1/keys"): KeyPage,
    ("get", "/v1/keys/{key_id}"): KeyPublic,
    ("patch", "/v1/keys/{key_id}"): KeyWritten,
    ("put", "/v1/keys/{key_id}/access-groups/{group_id}"): KeyWritten,
    ("delete", "/v1/keys/{key_id}/access-groups/{group_id}"): KeyWritten,
    ("post", "/v1/keys/{key_id}/block"): KeyWritten,
    ("post", "/v1/keys/{key_id}/unblock"): KeyWritten,
    ("post", "/v1/keys/{key_id}/rotate"): KeyWritten,
    ("post", "/v1/check"): Decision,
    ("post", "/v1/check/bulk"): Decisions,
    ("get", "/v1/keys/{key_id}/access"): KeyAccess,
    ("get", "/v1/who-can-use"): WhoCanUse,
    ("get", "/v1/models"): ModelList,
    ("get", "/v1/models/{model_id}"): ModelObject,
    ("get", "/v1/audit/events"): AuditEventPage,
    ("get", "/v1/audit/grants"): GrantIntervals,
    ("post", "/v1/audit/replay"): ReplayAnswer,
    ("post", "/v1/admin-tokens"): AdminTokenIssued,
    ("get", "/v1/admin-tokens"): AdminTokenPage,
    ("get", "/v1/admin-tokens/{token_id}"): AdminTokenPublic,
}
