"""casbin's RBAC with domains, in this process: a domain per kind, keys and
teams hold groups as roles, a policy line per (holder, kind, name) granted.

casbin has neither patterns nor exclusions, so a key limited on a kind gets
what its restriction lets through written directly, and no roles, in that
domain.
"""

from __future__ import annotations

import time
from typing import Any

from bench.peers.state import OrgState

MODEL = """
[request_definition]
r = sub, dom, obj

[policy_definition]
p = sub, dom, obj

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj
"""


class Casbin:
    name = "casbin"

    def __init__(self) -> None:
        import casbin

        model = casbin.model.Model()
        model.load_model_from_text(MODEL)
        self.enforcer = casbin.Enforcer(model)

    def load(self, state: OrgState) -> None:
        policies, links = [], []
        kinds = list(state.names)
        for holders in (state.group_grants, state.team_grants, state.key_grants):
            for holder_id, grants in holders.items():
                limits = state.key_limits.get(holder_id, {})
                for kind, numbers in grants.items():
                    if kind not in limits:
                        policies += [
                            [holder_id, kind, state.names[kind][n]] for n in numbers
                        ]
        for key_id, limits in state.key_limits.items():
            for kind, numbers in limits.items():
                policies += [[key_id, kind, state.names[kind][n]] for n in numbers]
        for holder_groups in (state.team_groups, state.key_groups):
            for holder_id, group_ids in holder_groups.items():
                limits = state.key_limits.get(holder_id, {})
                for kind in kinds:
                    if kind not in limits:
                        links += [[holder_id, group_id, kind] for group_id in group_ids]
        for key_id, team_id in state.key_team.items():
            limits = state.key_limits.get(key_id, {})
            links += [[key_id, team_id, kind] for kind in kinds if kind not in limits]
        self.enforcer.add_policies(policies)
        self.enforcer.add_grouping_policies(links)

    def check(self, key_id: str, kind: str, name: str) -> bool:
        return bool(self.enforcer.enforce(key_id, kind, name))

    def bulk(self, checks: list) -> list[bool]:
        return [bool(a) for a in self.enforcer.batch_enforce([list(c) for c in checks])]

    def models_of(self, key_id: str) -> int:
        found = self.enforcer.get_implicit_permissions_for_user(key_id, "model")
        return len({rule[2] for rule in found})

    def keys_of(self, name: str) -> int:
        started = time.perf_counter()
        users = self.enforcer.get_implicit_users_for_permission("model", name)
        self.last_lookup_s = time.perf_counter() - started
        return len(users)

    def grant_to_group(self, group_id: str, name: str) -> Any:
        return self.enforcer.add_policy(group_id, "model", name)

    def close(self) -> None:
        """Nothing outside this process to stop."""
