"""SECURITY.md is a promise: what it says about RPCs, access rules and settings
matches the protos, the door's policy and the settings' declarations."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from authsvc.config import Settings
from authsvc.config.declare import variables
from authsvc.transport.door import POLICY, Rule, SecondFactor
from authsvc.v1 import auth_pb2, user_admin_pb2

SECURITY_MD = Path(__file__).resolve().parents[2] / "SECURITY.md"
SERVICES = (auth_pb2.DESCRIPTOR.services_by_name["Auth"],
            user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"])


def rpcs() -> list[MethodDescriptor]:
    """Every RPC the protos define, of every service authsvc serves."""
    return [method for service in SERVICES for method in service.methods]


def section(text: str, heading: re.Pattern[str]) -> str:
    """The text under the first ``## `` heading matching ``heading``, up to the next."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith("## ") and heading.search(line)]
    assert starts, f"SECURITY.md has no section matching {heading.pattern!r}"
    body = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body)


def access_table(text: str) -> dict[str, str]:
    """The door section's table: RPC name -> rule code (both without backquotes)."""
    rows = {}
    for line in section(text, re.compile(r"Who may call what")).splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0] not in ("RPC", "---"):
            rows[cells[0]] = cells[1]
    return rows


def rule_code(method: MethodDescriptor, rule: Rule) -> str:
    """How SECURITY.md writes ``rule`` (its legend explains each part)."""
    if not rule.bearer:
        return "public"
    code = {SecondFactor.NOT_NEEDED: "bearer", SecondFactor.IF_ENROLLED: "step-up if enrolled",
            SecondFactor.ALWAYS: "step-up"}[rule.second_factor]
    if rule.scopes:
        code += "+scope:" + ",".join(rule.scopes)
    if rule.client_certificate:
        code = "certificate or " + code
    if rule.when is not None:
        request_type = GetMessageClass(method.input_type)
        needing = [field.name for field in method.input_type.fields
                   if field.type == field.TYPE_BOOL
                   and rule.when(request_type(**{field.name: True}))]
        assert not rule.when(request_type()), "a conditional rule that always asks"
        code = f"public; {code} for {' '.join(needing)}"
    return code


def test_the_non_goals_name_no_rpc_the_protos_define():
    """No RPC of the Auth or UserAdmin service is named among the non-goals: what
    authsvc serves is not something it deliberately does not do."""
    non_goals = section(SECURITY_MD.read_text(),
                        re.compile(r"non-goals|does not do", re.IGNORECASE))

    named = sorted(method.name for method in rpcs()
                   if re.search(rf"\b{method.name}\b", non_goals))

    assert non_goals.strip()
    assert named == []


def test_every_rpc_has_its_door_rule_in_the_access_table():
    """The access table lists exactly the RPCs the protos define, each with the
    rule the door enforces for it."""
    table = access_table(SECURITY_MD.read_text())

    expected = {method.name: rule_code(method, POLICY[f"/{method.full_name.rpartition('.')[0]}"
                                                       f"/{method.name}"])
                for method in rpcs()}

    assert table == expected


def test_every_setting_named_is_declared():
    """Each AUTHSVC_ variable SECURITY.md names is a declared setting (a name ending
    in ``_*`` stands for the declared settings it begins)."""
    declared = set(variables(Settings))
    named = set(re.findall(r"AUTHSVC_[A-Z0-9_]*[A-Z0-9](?:_\*)?", SECURITY_MD.read_text()))

    unknown = sorted(
        name for name in named
        if (not any(variable.startswith(name[:-1]) for variable in declared)
            if name.endswith("*") else name not in declared))

    assert named
    assert unknown == []
