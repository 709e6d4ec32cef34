"""Aggregates of the ledger: catalog resources, access groups, teams, keys and
name claims. Every change is a past-tense event carrying the actor and the
optional reason. A change that would change nothing records nothing.

The catalog check (a concrete selector must name an active resource) needs
the whole catalog, so it lives in `domain.rules` and runs before a command
reaches these methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import NameTaken, NotFound
from domain.resources import KINDS, GrantMap, grant_map_of, grant_pairs

# Fixed so that a resource's id and a name claim's id are the same everywhere.
LEDGER_NAMESPACE = UUID("5d0b6a0e-8f57-4b8e-9a55-2f1f6f4b8a61")


@dataclass(frozen=True)
class Change:
    """Who makes a change and why; recorded on every event it causes."""

    actor: str
    reason: str | None = None


class CatalogResource(Aggregate):
    """A model, MCP server or agent that grants can name."""

    @staticmethod
    def create_id(kind: str, name: str, **_: Any) -> UUID:
        return resource_id(kind, name)

    @event("Registered")
    def __init__(
        self, kind: str, name: str, description: str, actor: str, reason: str | None
    ) -> None:
        self.kind = kind
        self.name = name
        self.description = description
        self.active = True

    def register_again(self, description: str | None, change: Change) -> None:
        if not self.active:
            self._returned(change.actor, change.reason)
        if description is not None and description != self.description:
            self._described(description, change.actor, change.reason)

    def retire(self, change: Change) -> None:
        if self.active:
            self._retired(change.actor, change.reason)

    @event("Returned")
    def _returned(self, actor: str, reason: str | None) -> None:
        self.active = True

    @event("Retired")
    def _retired(self, actor: str, reason: str | None) -> None:
        self.active = False

    @event("Described")
    def _described(self, description: str, actor: str, reason: str | None) -> None:
        self.description = description


def resource_id(kind: str, name: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"resource\x00{kind}\x00{name}")


class NameClaim(Aggregate):
    """Holds one normalised name for one live holder.

    Two requests racing for a name both try to record the next version of
    the same claim; the store's unique (id, version) lets only one win.
    """

    @staticmethod
    def create_id(scope: str, normalised_name: str, **_: Any) -> UUID:
        return name_claim_id(scope, normalised_name)

    @event("Opened")
    def __init__(
        self, scope: str, normalised_name: str, actor: str, reason: str | None
    ) -> None:
        self.scope = scope
        self.normalised_name = normalised_name
        self.holder_id: str | None = None

    def claim(self, holder_id: str, change: Change) -> None:
        if self.holder_id == holder_id:
            return
        if self.holder_id is not None:
            raise NameTaken(f"the name is taken by {self.scope} {self.holder_id}")
        self._claimed(holder_id, change.actor, change.reason)

    def release(self, holder_id: str, change: Change) -> None:
        if self.holder_id == holder_id:
            self._released(change.actor, change.reason)

    @event("Claimed")
    def _claimed(self, holder_id: str, actor: str, reason: str | None) -> None:
        self.holder_id = holder_id

    @event("Released")
    def _released(self, actor: str, reason: str | None) -> None:
        self.holder_id = None


def name_claim_id(scope: str, normalised_name: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"name\x00{scope}\x00{normalised_name}")


class Holder(Aggregate):
    """Anything that carries direct grants: groups, teams and keys.

    Subclasses set `grants` (kind -> set of selectors) and `deleted` when
    created. They are not annotated here, since the library would take class
    annotations for constructor fields.
    """

    def add_grants(self, grants: GrantMap, change: Change) -> None:
        self.change_grants(grants, {}, change)

    def remove_grants(self, grants: GrantMap, change: Change) -> None:
        self.change_grants({}, grants, change)

    def change_grants(self, add: GrantMap, remove: GrantMap, change: Change) -> None:
        """Remove, then add; record only the net change.

        Every grant to remove must be there. Removing and adding the same
        grant leaves it, and records nothing for it.
        """
        present, adding, removing = (grant_pairs(m) for m in (self.grants, add, remove))
        missing = removing - present
        if missing:
            kind, selector = sorted(missing)[0]
            raise NotFound(f"{kind} selector {selector!r} is not granted here")

        removed, added = removing - adding, adding - present
        if removed:
            self._grants_removed(grant_map_of(removed), change.actor, change.reason)
        if added:
            self._grants_added(grant_map_of(added), change.actor, change.reason)

    def delete(self, change: Change) -> None:
        self._deleted(change.actor, change.reason)

    def grant_map(self) -> GrantMap:
        return grant_map_of(grant_pairs(self.grants))

    @event("GrantsAdded")
    def _grants_added(self, grants: GrantMap, actor: str, reason: str | None) -> None:
        for kind, selectors in grants.items():
            self.grants[kind].update(selectors)

    @event("GrantsRemoved")
    def _grants_removed(self, grants: GrantMap, actor: str, reason: str | None) -> None:
        for kind, selectors in grants.items():
            self.grants[kind].difference_update(selectors)

    @event("Deleted")
    def _deleted(self, actor: str, reason: str | None) -> None:
        self.deleted = True


def grant_sets(grants: GrantMap) -> dict[str, set[str]]:
    return {kind: set(grants.get(kind, ())) for kind in KINDS}


class AccessGroup(Holder):
    """A named bundle of grants, attached to keys and teams."""

    @event("Created")
    def __init__(
        self,
        name: str,
        description: str,
        grants: GrantMap,
        actor: str,
        reason: str | None,
    ) -> None:
        self.name = name
        self.description = description
        self.grants = grant_sets(grants)
        self.deleted = False

    def rename(self, name: str, change: Change) -> None:
        if name != self.name:
            self._renamed(name, change.actor, change.reason)

    def describe(self, description: str, change: Change) -> None:
        if description != self.description:
            self._described(description, change.actor, change.reason)

    @event("Renamed")
    def _renamed(self, name: str, actor: str, reason: str | None) -> None:
        self.name = name

    @event("Described")
    def _described(self, description: str, actor: str, reason: str | None) -> None:
        self.description = description


class Principal(Holder):
    """A holder that groups attach to and that can be blocked: teams and keys.

    Subclasses set `access_groups` (a set of group ids) and `blocked`.
    """

    def attach_group(self, group_id: str, change: Change) -> None:
        if group_id not in self.access_groups:
            self._group_attached(group_id, change.actor, change.reason)

    def detach_group(self, group_id: str, change: Change) -> None:
        if group_id not in self.access_groups:
            raise NotFound(f"access group {group_id} is not attached here")
        self._group_detached(group_id, change.actor, change.reason)

    def block(self, change: Change) -> None:
        if not self.blocked:
            self._blocked(change.actor, change.reason)

    def unblock(self, change: Change) -> None:
        if self.blocked:
            self._unblocked(change.actor, change.reason)

    @event("GroupAttached")
    def _group_attached(self, group_id: str, actor: str, reason: str | None) -> None:
        self.access_groups.add(group_id)

    @event("GroupDetached")
    def _group_detached(self, group_id: str, actor: str, reason: str | None) -> None:
        self.access_groups.discard(group_id)

    @event("Blocked")
    def _blocked(self, actor: str, reason: str | None) -> None:
        self.blocked = True

    @event("Unblocked")
    def _unblocked(self, actor: str, reason: str | None) -> None:
        self.blocked = False


class Team(Principal):
    """Keys of a team get the team's grants and the grants of its groups."""

    @event("Created")
    def __init__(
        self,
        name: str,
        access_groups: list[str],
        grants: GrantMap,
        actor: str,
        reason: str | None,
    ) -> None:
        self.name = name
        self.access_groups = set(access_groups)
        self.grants = grant_sets(grants)
        self.blocked = False
        self.deleted = False

    def rename(self, name: str, change: Change) -> None:
        if name != self.name:
            self._renamed(name, change.actor, change.reason)

    @event("Renamed")
    def _renamed(self, name: str, actor: str, reason: str | None) -> None:
        self.name = name


class Key(Principal):
    """A virtual key. Its secret is never recorded, only the secret's hash."""

    @event("Created")
    def __init__(
        self,
        alias: str,
        team_id: str | None,
        access_groups: list[str],
        grants: GrantMap,
        restrict: GrantMap | None,
        expires_at: str | None,
        secret_hash: str,
        actor: str,
        reason: str | None,
    ) -> None:
        self.alias = alias
        self.team_id = team_id
        self.access_groups = set(access_groups)
        self.grants = grant_sets(grants)
        self.restrict = restrict
        self.expires_at = expires_at
        self.secret_hash = secret_hash
        self.blocked = False
        self.deleted = False

    def rename(self, alias: str, change: Change) -> None:
        if alias != self.alias:
            self._renamed(alias, change.actor, change.reason)

    def set_restriction(self, restrict: GrantMap | None, change: Change) -> None:
        if restrict != self.restrict:
            self._restricted(restrict, change.actor, change.reason)

    def set_expiry(self, expires_at: str | None, change: Change) -> None:
        if expires_at != self.expires_at:
            self._expiry_set(expires_at, change.actor, change.reason)

    def rotate(self, secret_hash: str, change: Change) -> None:
        self._rotated(secret_hash, change.actor, change.reason)

    @event("Renamed")
    def _renamed(self, alias: str, actor: str, reason: str | None) -> None:
        self.alias = alias

    @event("Restricted")
    def _restricted(
        self, restrict: GrantMap | None, actor: str, reason: str | None
    ) -> None:
        self.restrict = restrict

    @event("ExpirySet")
    def _expiry_set(self, expires_at: str | None, actor: str, reason: str | None) -> None:
        self.expires_at = expires_at

    @event("Rotated")
    def _rotated(self, secret_hash: str, actor: str, reason: str | None) -> None:
        self.secret_hash = secret_hash


# What each role may do; the routes declare which roles reach them.
ROLES = ("admin", "auditor", "gateway")


class AdminToken(Aggregate):
    """A named admin token with one role. Only the token's SHA-256 is
    recorded: the token itself is answered once, when it is issued."""

    @event("Issued")
    def __init__(
        self, name: str, role: str, token_hash: str, actor: str, reason: str | None
    ) -> None:
        self.name = name
        self.role = role
        self.token_hash = token_hash
        self.revoked = False

    def revoke(self, change: Change) -> None:
        if not self.revoked:
            self._revoked(change.actor, change.reason)

    @event("Revoked")
    def _revoked(self, actor: str, reason: str | None) -> None:
        self.revoked = True
