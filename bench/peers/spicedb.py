"""SpiceDB v1.54, embedded in this process through its C library.

Checks and writes go through the library's in-process calls; the lookups
(streaming calls) go through its unix socket with the `authzed` client.
Every question asks for a fully consistent answer: that is the promise
this service makes (no answer older than a write that has returned).
"""

from __future__ import annotations

from typing import Any, Iterator

from bench.peers.state import OrgState

# Restrictions are an exclusion: what a limited key may use is what it is
# granted minus everything of that kind its restriction does not let through.
SCHEMA = """
definition key {}

definition team {
    relation member: key
}

definition group {
    relation member: key | team#member
}

definition limit {
    relation member: key
}
""" + "".join(
    f"""
definition {kind} {{
    relation grantee: key | team#member | group#member
    relation limited: limit#member
    relation let_through: key
    permission use = grantee - (limited - let_through)
}}
"""
    for kind in ("model", "mcp_server", "agent")
)

WRITE_PAGE = 1000


class SpiceDB:
    name = "SpiceDB"

    def __init__(self) -> None:
        from authzed.api.v1 import Consistency
        from authzed.api.v1.permission_service_pb2_grpc import PermissionsServiceStub
        from spicedb_embedded import EmbeddedSpiceDB

        self.db = EmbeddedSpiceDB.start(SCHEMA)
        self.permissions = self.db.permissions()
        self.streams = PermissionsServiceStub(self.db.channel())
        self.consistency = Consistency(fully_consistent=True)

    def load(self, state: OrgState) -> None:
        self.numbers = state.numbers()
        self.write(relationships(state))

    def write(self, triples: Iterator[tuple[str, str, str, str, str, str]]) -> Any:
        from authzed.api.v1 import RelationshipUpdate, WriteRelationshipsRequest

        touch = RelationshipUpdate.Operation.OPERATION_TOUCH
        page: list[Any] = []
        token = None
        for triple in triples:
            page.append(
                RelationshipUpdate(operation=touch, relationship=relation(*triple))
            )
            if len(page) == WRITE_PAGE:
                token = self.send(WriteRelationshipsRequest(updates=page))
                page = []
        if page:
            token = self.send(WriteRelationshipsRequest(updates=page))
        return token

    def send(self, request: Any) -> Any:
        return self.permissions.WriteRelationships(request).written_at

    def check(self, key_id: str, kind: str, name: str, token: Any = None) -> bool:
        from authzed.api.v1 import (
            CheckPermissionRequest,
            CheckPermissionResponse,
            Consistency,
        )

        consistency = self.consistency
        if token is not None:
            consistency = Consistency(at_least_as_fresh=token)
        request = CheckPermissionRequest(
            consistency=consistency,
            resource=reference(kind, f"r{self.numbers[kind][name]}"),
            permission="use",
            subject=subject("key", key_id),
        )
        answer = self.permissions.CheckPermission(request)
        return bool(
            answer.permissionship == CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION
        )

    def bulk(self, checks: list) -> list[bool]:
        from authzed.api.v1 import (
            CheckBulkPermissionsRequest,
            CheckBulkPermissionsRequestItem,
            CheckPermissionResponse,
        )

        items = [
            CheckBulkPermissionsRequestItem(
                resource=reference(kind, f"r{self.numbers[kind][name]}"),
                permission="use",
                subject=subject("key", key_id),
            )
            for key_id, kind, name in checks
        ]
        request = CheckBulkPermissionsRequest(consistency=self.consistency, items=items)
        answer = self.permissions.CheckBulkPermissions(request)
        allowed = CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION
        return [p.item.permissionship == allowed for p in answer.pairs]

    def models_of(self, key_id: str) -> int:
        from authzed.api.v1 import LookupResourcesRequest

        request = LookupResourcesRequest(
            consistency=self.consistency,
            resource_object_type="model",
            permission="use",
            subject=subject("key", key_id),
        )
        return sum(1 for _ in self.streams.LookupResources(request))

    def keys_of(self, name: str) -> int:
        from authzed.api.v1 import LookupSubjectsRequest

        request = LookupSubjectsRequest(
            consistency=self.consistency,
            resource=reference("model", f"r{self.numbers['model'][name]}"),
            permission="use",
            subject_object_type="key",
        )
        return sum(1 for _ in self.streams.LookupSubjects(request))

    def grant_to_group(self, group_id: str, name: str) -> Any:
        number = self.numbers["model"][name]
        return self.write(
            iter([("model", f"r{number}", "grantee", "group", group_id, "member")])
        )

    def close(self) -> None:
        self.db.close()


def relationships(state: OrgState) -> Iterator[tuple[str, str, str, str, str, str]]:
    """(type, id, relation, subject type, subject id, subject relation)."""
    for kind, names in state.names.items():
        for number in range(len(names)):
            yield kind, f"r{number}", "limited", "limit", kind, "member"
    for holders, subject_type, relation_of in (
        (state.group_grants, "group", "member"),
        (state.team_grants, "team", "member"),
        (state.key_grants, "key", ""),
    ):
        for holder_id, grants in holders.items():
            for kind, numbers in grants.items():
                for number in numbers:
                    yield (
                        kind,
                        f"r{number}",
                        "grantee",
                        subject_type,
                        holder_id,
                        relation_of,
                    )
    for team_id, group_ids in state.team_groups.items():
        for group_id in group_ids:
            yield "group", group_id, "member", "team", team_id, "member"
    for key_id, group_ids in state.key_groups.items():
        for group_id in group_ids:
            yield "group", group_id, "member", "key", key_id, ""
    for key_id, team_id in state.key_team.items():
        yield "team", team_id, "member", "key", key_id, ""
    for key_id, limits in state.key_limits.items():
        for kind, numbers in limits.items():
            yield "limit", kind, "member", "key", key_id, ""
            for number in numbers:
                yield kind, f"r{number}", "let_through", "key", key_id, ""


def reference(object_type: str, object_id: str) -> Any:
    from authzed.api.v1 import ObjectReference

    return ObjectReference(object_type=object_type, object_id=object_id)


def subject(object_type: str, object_id: str, relation_name: str = "") -> Any:
    from authzed.api.v1 import SubjectReference

    return SubjectReference(
        object=reference(object_type, object_id), optional_relation=relation_name
    )


def relation(
    object_type: str,
    object_id: str,
    name: str,
    subject_type: str,
    subject_id: str,
    subject_relation: str,
) -> Any:
    from authzed.api.v1 import Relationship

    return Relationship(
        resource=reference(object_type, object_id),
        relation=name,
        subject=subject(subject_type, subject_id, subject_relation),
    )
