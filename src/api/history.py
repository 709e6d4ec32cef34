"""Plays admin operations in the shared JSON Lines format (see the README).

Holders are named by local references (`group-3`, `team-12`, `key-907`);
the player maps them to the ids the service hands out. The same player
drives the application service in-process or a running server over HTTP.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from api.ledger import UNSET, Ledger
from domain.aggregates import Change
from domain.errors import InvalidRequest, LedgerError


class Backend(Protocol):
    """The writes an operation can need, whatever carries them out."""

    def batch(self) -> AbstractContextManager[Any]: ...

    def register(self, kind: str, name: str) -> None: ...
    def retire(self, kind: str, name: str) -> None: ...
    def create_group(self, name: str, description: str, grants: dict) -> str: ...
    def update_group(self, group_id: str, **fields: Any) -> None: ...
    def delete_group(self, group_id: str) -> None: ...
    def create_team(self, name: str, groups: list[str], grants: dict) -> str: ...
    def delete_team(self, team_id: str) -> None: ...
    def create_key(
        self,
        alias: str,
        team_id: str | None,
        groups: list[str],
        grants: dict,
        restrict: dict | None,
    ) -> tuple[str, str]: ...
    def update_key(self, key_id: str, **fields: Any) -> None: ...
    def change_grants(
        self, type_: str, holder_id: str, add: dict | None, remove: dict | None
    ) -> None: ...
    def set_attachment(
        self, type_: str, holder_id: str, group_id: str, attached: bool
    ) -> None: ...
    def set_blocked(self, type_: str, holder_id: str, blocked: bool) -> None: ...
    def rotate_key(self, key_id: str) -> str: ...
    def delete_key(self, key_id: str) -> None: ...


class HistoryPlayer:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.refs: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.old_secrets: dict[str, str] = {}

    def play(self, op: dict[str, Any]) -> None:
        """Carry out one operation; LedgerError or InvalidRequest when it fails."""
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise InvalidRequest("each line must be an object with an 'op' field")
        handler = getattr(self, "op_" + op["op"], None)
        if handler is None:
            raise InvalidRequest(f"unknown operation {op['op']!r}")
        try:
            handler(op)
        except KeyError as missing:
            raise InvalidRequest(
                f"missing field or unknown reference {missing}"
            ) from None

    def ref(self, name: str) -> str:
        try:
            return self.refs[name]
        except KeyError:
            raise InvalidRequest(f"unknown reference {name!r}") from None

    def target(self, text: str) -> tuple[str, str]:
        type_, _, ref = text.partition(":")
        if type_ not in ("key", "team") or not ref:
            raise InvalidRequest(f"a target is key:REF or team:REF, not {text!r}")
        return type_, self.ref(ref)

    def op_checkpoint(self, op: dict) -> None:
        """A marker in the history; changes nothing."""

    def op_register(self, op: dict) -> None:
        self.backend.register(op["kind"], op["name"])

    def op_retire(self, op: dict) -> None:
        self.backend.retire(op["kind"], op["name"])

    def op_create_group(self, op: dict) -> None:
        self.refs[op["group"]] = self.backend.create_group(
            op["name"], op.get("description") or "", op.get("grants") or {}
        )

    def op_add_to_group(self, op: dict) -> None:
        self.backend.change_grants("group", self.ref(op["group"]), op["grants"], None)

    def op_remove_from_group(self, op: dict) -> None:
        self.backend.change_grants("group", self.ref(op["group"]), None, op["grants"])

    def op_rename_group(self, op: dict) -> None:
        self.backend.update_group(self.ref(op["group"]), name=op["name"])

    def op_delete_group(self, op: dict) -> None:
        self.backend.delete_group(self.ref(op["group"]))

    def op_create_team(self, op: dict) -> None:
        groups = [self.ref(g) for g in op.get("groups") or []]
        self.refs[op["team"]] = self.backend.create_team(
            op["name"], groups, op.get("grants") or {}
        )

    def op_delete_team(self, op: dict) -> None:
        self.backend.delete_team(self.ref(op["team"]))

    def op_create_key(self, op: dict) -> None:
        team = self.ref(op["team"]) if op.get("team") else None
        groups = [self.ref(g) for g in op.get("groups") or []]
        key_id, secret = self.backend.create_key(
            op["alias"], team, groups, op.get("grants") or {}, op.get("restrict")
        )
        self.refs[op["key"]] = key_id
        self.secrets[op["key"]] = secret

    def op_attach(self, op: dict) -> None:
        type_, holder_id = self.target(op["to"])
        self.backend.set_attachment(type_, holder_id, self.ref(op["group"]), True)

    def op_detach(self, op: dict) -> None:
        type_, holder_id = self.target(op["from"])
        self.backend.set_attachment(type_, holder_id, self.ref(op["group"]), False)

    def op_grant(self, op: dict) -> None:
        type_, holder_id = self.target(op["to"])
        self.backend.change_grants(type_, holder_id, op["grants"], None)

    def op_revoke(self, op: dict) -> None:
        type_, holder_id = self.target(op["from"])
        self.backend.change_grants(type_, holder_id, None, op["grants"])

    def op_block(self, op: dict) -> None:
        self.backend.set_blocked(*self.target(op["target"]), True)

    def op_unblock(self, op: dict) -> None:
        self.backend.set_blocked(*self.target(op["target"]), False)

    def op_restrict(self, op: dict) -> None:
        self.backend.update_key(self.ref(op["key"]), restrict=op["restrict"])

    def op_expire_key(self, op: dict) -> None:
        self.backend.update_key(self.ref(op["key"]), expires_at=op["expires_at"])

    def op_rotate_key(self, op: dict) -> None:
        secret = self.backend.rotate_key(self.ref(op["key"]))
        self.old_secrets[op["key"]] = self.secrets.get(op["key"], "")
        self.secrets[op["key"]] = secret

    def op_delete_key(self, op: dict) -> None:
        self.backend.delete_key(self.ref(op["key"]))


class LocalBackend:
    """Operations through the application service, in this process."""

    def __init__(self, ledger: Ledger, change: Change) -> None:
        self.ledger = ledger
        self.change = change

    def batch(self) -> AbstractContextManager[Any]:
        return self.ledger.batch()

    def register(self, kind: str, name: str) -> None:
        self.ledger.register_resource(kind, name, None, self.change)

    def retire(self, kind: str, name: str) -> None:
        self.ledger.retire_resource(kind, name, self.change)

    def create_group(self, name: str, description: str, grants: dict) -> str:
        return self.ledger.create_group(name, description, grants, self.change)[0]

    def update_group(self, group_id: str, **fields: Any) -> None:
        self.ledger.update_group(group_id, self.change, **fields)

    def delete_group(self, group_id: str) -> None:
        self.ledger.delete_group(group_id, self.change)

    def create_team(self, name: str, groups: list[str], grants: dict) -> str:
        return self.ledger.create_team(name, groups, grants, self.change)[0]

    def delete_team(self, team_id: str) -> None:
        self.ledger.delete_team(team_id, self.change)

    def create_key(
        self,
        alias: str,
        team_id: str | None,
        groups: list[str],
        grants: dict,
        restrict: dict | None,
    ) -> tuple[str, str]:
        return self.ledger.create_key(
            alias,
            self.change,
            team_id=team_id,
            access_groups=groups,
            grants=grants,
            restrict=restrict,
        )[0]

    def update_key(self, key_id: str, **fields: Any) -> None:
        values = {"restrict": UNSET, "expires_at": UNSET, **fields}
        self.ledger.update_key(key_id, self.change, **values)

    def change_grants(
        self, type_: str, holder_id: str, add: dict | None, remove: dict | None
    ) -> None:
        self.ledger.change_grants(type_, holder_id, self.change, add=add, remove=remove)

    def set_attachment(
        self, type_: str, holder_id: str, group_id: str, attached: bool
    ) -> None:
        self.ledger.set_attachment(type_, holder_id, group_id, attached, self.change)

    def set_blocked(self, type_: str, holder_id: str, blocked: bool) -> None:
        self.ledger.set_blocked(type_, holder_id, blocked, self.change)

    def rotate_key(self, key_id: str) -> str:
        return self.ledger.rotate_key(key_id, self.change)[0]

    def delete_key(self, key_id: str) -> None:
        self.ledger.delete_key(key_id, self.change)


class RemoteError(LedgerError):
    """An error answer from a server, carried with its own status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HttpBackend:
    """Operations through a server's HTTP API (or an in-process test client)."""

    PATHS = {"group": "access-groups", "team": "teams", "key": "keys"}

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def batch(self) -> AbstractContextManager[Any]:
        """Each request is its own transaction on the server."""
        return nullcontext()

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.client.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                detail = response.json()["error"]
                raise RemoteError(response.status_code, detail["code"], detail["message"])
            except (ValueError, KeyError, TypeError):
                raise RemoteError(
                    response.status_code, "error", response.text[:200]
                ) from None
        return response.json() if response.content else {}

    def resource_path(self, kind: str, name: str) -> str:
        return f"/v1/catalog/{quote(kind, safe='')}/{quote(name, safe='')}"

    def register(self, kind: str, name: str) -> None:
        self.call("PUT", self.resource_path(kind, name))

    def retire(self, kind: str, name: str) -> None:
        self.call("DELETE", self.resource_path(kind, name))

    def create_group(self, name: str, description: str, grants: dict) -> str:
        body = {"name": name, "description": description, "grants": grants}
        return self.call("POST", "/v1/access-groups", body)["id"]  # type: ignore[no-any-return]

    def update_group(self, group_id: str, **fields: Any) -> None:
        self.call("PATCH", f"/v1/access-groups/{group_id}", fields)

    def delete_group(self, group_id: str) -> None:
        self.call("DELETE", f"/v1/access-groups/{group_id}")

    def create_team(self, name: str, groups: list[str], grants: dict) -> str:
        body = {"name": name, "access_groups": groups, "grants": grants}
        return self.call("POST", "/v1/teams", body)["id"]  # type: ignore[no-any-return]

    def delete_team(self, team_id: str) -> None:
        self.call("DELETE", f"/v1/teams/{team_id}")

    def create_key(
        self,
        alias: str,
        team_id: str | None,
        groups: list[str],
        grants: dict,
        restrict: dict | None,
    ) -> tuple[str, str]:
        body = {
            "alias": alias,
            "team_id": team_id,
            "access_groups": groups,
            "grants": grants,
            "restrict": restrict,
        }
        key = self.call("POST", "/v1/keys", body)
        return key["id"], key["secret"]

    def update_key(self, key_id: str, **fields: Any) -> None:
        self.call("PATCH", f"/v1/keys/{key_id}", fields)

    def change_grants(
        self, type_: str, holder_id: str, add: dict | None, remove: dict | None
    ) -> None:
        body = {
            name: value for name, value in (("add", add), ("remove", remove)) if value
        }
        self.call("PATCH", f"/v1/{self.PATHS[type_]}/{holder_id}", body)

    def set_attachment(
        self, type_: str, holder_id: str, group_id: str, attached: bool
    ) -> None:
        path = f"/v1/{self.PATHS[type_]}/{holder_id}/access-groups/{group_id}"
        self.call("PUT" if attached else "DELETE", path)

    def set_blocked(self, type_: str, holder_id: str, blocked: bool) -> None:
        action = "block" if blocked else "unblock"
        self.call("POST", f"/v1/{self.PATHS[type_]}/{holder_id}/{action}")

    def rotate_key(self, key_id: str) -> str:
        return self.call("POST", f"/v1/keys/{key_id}/rotate")["secret"]  # type: ignore[no-any-return]

    def delete_key(self, key_id: str) -> None:
        self.call("DELETE", f"/v1/keys/{key_id}")
