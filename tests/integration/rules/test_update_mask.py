"""UpsertEnterprise's update_mask (issue 14.6) on SQLite and PostgreSQL: with a mask only
the named profile fields change; without one the profile is replaced (the history lists
accidents, penalties and hazards still only grow)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.entrypoints.convert import facts_to_dict, profile_from_json
from tests.integration.conftest import upsert, violations
from tests.support import profile, uscc

FULL = {
    "high_risk_domains": ["dust_explosion", "confined_space"],
    "employees": 30,
    "facts": {"gen.training_missing": True, "gen.no_hazard_ledger": False},
}
HAZARD = {
    "hazard_id": "H1",
    "clause_ref": "GEN:ledger",
    "severity": "general",
    "found_on": "2026-06-01",
    "due_on": "2026-07-01",
    "status": "open",
}


def masked(stub: RulesServiceStub, data: dict[str, Any], *paths: str) -> pb.EnterpriseStatus:
    return stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(data),
            update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
        ),
        timeout=30,
    )


def refused(stub: RulesServiceStub, data: dict[str, Any], *paths: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        masked(stub, data, *paths)
    return info.value


def test_without_a_mask_the_profile_is_replaced(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1, **FULL))
    status = upsert(register_stub, profile(1, employees=80))
    assert status.profile.employees == 80
    assert list(status.profile.high_risk_domains) == []
    assert facts_to_dict(status.profile.facts) == {}


def test_with_a_mask_only_the_named_fields_change(register_stub: RulesServiceStub) -> None:
    before = upsert(register_stub, profile(1, hazards=[HAZARD], **FULL))
    status = masked(register_stub, {"enterprise_id": uscc(1), "employees": 80}, "employees")
    assert status.profile.employees == 80
    expected = pb.EnterpriseProfile()
    expected.CopyFrom(before.profile)
    expected.employees = 80
    assert status.profile == expected  # domains, facts, name, hazards: as they were
    assert status.decision.decision_id != before.decision.decision_id  # re-evaluated


def test_a_mask_may_name_one_fact_and_clears_one_not_sent(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1, **FULL))
    status = masked(
        register_stub,
        {"enterprise_id": uscc(1), "facts": {"gen.training_missing": False}},
        "facts.gen.training_missing",
        "facts.gen.no_hazard_ledger",  # in the mask, not in the request: cleared
    )
    assert facts_to_dict(status.profile.facts) == {"gen.training_missing": False}
    assert list(status.profile.high_risk_domains) == [
        pb.HIGH_RISK_DOMAIN_DUST_EXPLOSION,
        pb.HIGH_RISK_DOMAIN_CONFINED_SPACE,
    ]


def test_masked_lists_of_record_still_only_grow(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1, hazards=[HAZARD]))
    second = {**HAZARD, "hazard_id": "H2"}
    status = masked(register_stub, {"enterprise_id": uscc(1), "hazards": [second]}, "hazards")
    assert [h.hazard_id for h in status.profile.hazards] == ["H1", "H2"]


def test_star_replaces_the_whole_profile(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1, **FULL))
    status = masked(register_stub, profile(1, employees=80), "*")
    assert (status.profile.employees, facts_to_dict(status.profile.facts)) == (80, {})


@pytest.mark.parametrize(
    ("paths", "field"),
    [
        (["employee_count"], "update_mask.paths[0]"),
        (["employees", "profile.name"], "update_mask.paths[1]"),
        (["facts."], "update_mask.paths[0]"),
        (["*", "name"], "update_mask.paths"),
        (["name"] * 201, "update_mask.paths"),
    ],
    ids=["unknown", "prefixed", "empty-fact-key", "star-and-more", "too-many"],
)
def test_a_bad_path_is_invalid_argument_naming_it(
    register_stub: RulesServiceStub, paths: list[str], field: str
) -> None:
    upsert(register_stub, profile(1))
    error = refused(register_stub, {"enterprise_id": uscc(1), "employees": 5}, *paths)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error), violations(error)


def test_a_masked_field_is_validated_and_nothing_is_written(
    register_stub: RulesServiceStub,
) -> None:
    before = upsert(register_stub, profile(1))
    error = refused(register_stub, {"enterprise_id": uscc(1), "employees": -1}, "employees")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.employees" in violations(error)
    after = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    )
    assert after.decision.decision_id == before.decision.decision_id


def test_a_mask_for_a_firm_not_in_the_register_is_not_found(
    register_stub: RulesServiceStub,
) -> None:
    error = refused(register_stub, {"enterprise_id": uscc(7), "employees": 5}, "employees")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "without update_mask" in (error.details() or "")


def test_a_retired_fact_kept_on_record_does_not_refuse_a_masked_update(
    register_stub: RulesServiceStub, db_engine: Any
) -> None:
    """A stored profile may keep a retired fact key the data migration could not map
    (CHANGELOG, issue 9); a masked update that does not send it goes through and keeps it,
    one that sends it is refused naming the replacements."""
    from sqlalchemy import update

    from services.rules.adapters.orm import firms

    upsert(register_stub, profile(1))
    kept = profile(1, facts={"gm.contractor_unmanaged": True})
    with db_engine.begin() as conn:
        conn.execute(update(firms).values(profile=kept))
    status = masked(register_stub, {"enterprise_id": uscc(1), "employees": 80}, "employees")
    assert status.profile.employees == 80
    assert facts_to_dict(status.profile.facts) == {"gm.contractor_unmanaged": True}
    error = refused(
        register_stub,
        {"enterprise_id": uscc(1), "facts": {"gm.contractor_unmanaged": True}},
        "facts.gm.contractor_unmanaged",
    )
    assert "retired fact key; use" in violations(error)["update_mask.paths[0]"]
    # naming it without sending it removes it (review 21, 2: refused for a while)
    cleared = masked(register_stub, {"enterprise_id": uscc(1)}, "facts.gm.contractor_unmanaged")
    assert facts_to_dict(cleared.profile.facts) == {}


CO_ALARM = "metallurgy.co_alarm_not_monitored_24h"


@pytest.mark.parametrize(
    "path, says",
    [
        ("facts.metallurgy.co_alarm_not_monitored24h", CO_ALARM),  # a typo: the nearest key
        ("facts.no.such_key", "unknown fact key"),
        ("facts." + "x" * 5000, "'facts.xxxxxxxx"),  # quoted by its short prefix only
    ],
    ids=["misspelt", "unknown", "huge"],
)
def test_a_fact_path_naming_no_registry_key_is_refused_and_nothing_changes(
    register_stub: RulesServiceStub, path: str, says: str
) -> None:
    """It was OK and changed nothing: the sent fact silently ignored (review finding 5)."""
    before = upsert(register_stub, profile(1, facts={CO_ALARM: True}))
    sent = {"enterprise_id": uscc(1), "facts": {CO_ALARM: False}}
    error = refused(register_stub, sent, "employees", path)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    problem = violations(error)["update_mask.paths[1]"]
    assert says in problem and "x" * 40 not in problem and len(problem) < 400, problem
    after = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    )
    assert after.decision.decision_id == before.decision.decision_id
    assert facts_to_dict(after.profile.facts) == {CO_ALARM: True}
    applied = masked(register_stub, sent, "facts." + CO_ALARM)  # the registry's spelling
    assert facts_to_dict(applied.profile.facts) == {CO_ALARM: False}


def test_text_stored_with_a_control_character_does_not_refuse_a_masked_update(
    register_stub: RulesServiceStub, db_engine: Any
) -> None:
    """Review 21, 3: a name stored with a tab (before control characters were refused)
    made every masked update fail on `profile.name`, even one naming only `employees`;
    sending such text is still refused."""
    from sqlalchemy import update

    from services.rules.adapters.orm import firms

    upsert(register_stub, profile(1))
    kept = profile(1, name="测试\t企业")
    with db_engine.begin() as conn:
        conn.execute(update(firms).values(profile=kept))
    status = masked(register_stub, {"enterprise_id": uscc(1), "employees": 80}, "employees")
    assert status.profile.employees == 80 and status.profile.name == "测试\t企业"
    error = refused(register_stub, {"enterprise_id": uscc(1), "name": "新\t名"}, "name")
    assert "profile.name" in violations(error)
    fixed = masked(register_stub, {"enterprise_id": uscc(1), "name": "测试企业"}, "name")
    assert fixed.profile.name == "测试企业"


OLD_NAME, NEW_NAME = "chem.external_distance_short", "chem.external_distance_noncompliant"
CHEMICALS = {"industry": "chemicals", "hazchem_roles": ["producer"]}


@pytest.mark.parametrize(
    "facts, paths, field",
    [
        ({OLD_NAME: True, NEW_NAME: False}, [f"facts.{OLD_NAME}"], f'profile.facts["{OLD_NAME}"]'),
        ({OLD_NAME: True, NEW_NAME: False}, [f"facts.{NEW_NAME}"], f'profile.facts["{OLD_NAME}"]'),
        ({OLD_NAME: True, NEW_NAME: False}, ["employees"], f'profile.facts["{OLD_NAME}"]'),
        ({OLD_NAME: True, NEW_NAME: "x"}, ["facts"], f'profile.facts["{OLD_NAME}"]'),
        ({OLD_NAME: True}, [f"facts.{OLD_NAME}", f"facts.{NEW_NAME}"], "update_mask.paths[0]"),
    ],
    ids=["mask-old", "mask-new", "mask-other", "mask-all-facts", "paths-both"],
)
def test_both_names_of_a_renamed_fact_are_refused_naming_the_one_sent(
    register_stub: RulesServiceStub, facts: dict[str, Any], paths: list[str], field: str
) -> None:
    """Review 53 N3: a masked call sending a fact under its former name and its current
    one was accepted, the value the mask named dropped for the other; one name is read,
    both are INVALID_ARGUMENT naming the former one, and nothing changes."""
    before = upsert(register_stub, profile(1, facts={NEW_NAME: False}, **CHEMICALS))
    error = refused(register_stub, {"enterprise_id": uscc(1), "facts": facts}, *paths)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(error)
    assert NEW_NAME in found.get(field, ""), found
    after = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    )
    assert after.decision.decision_id == before.decision.decision_id


def test_a_bad_value_under_a_former_fact_name_is_named_as_sent(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N3: the violation named the current key, which the caller never sent."""
    upsert(register_stub, profile(1, facts={NEW_NAME: False}, **CHEMICALS))
    sent = {"enterprise_id": uscc(1), "facts": {OLD_NAME: "yes"}}
    for path in (f"facts.{OLD_NAME}", f"facts.{NEW_NAME}", "facts"):
        found = violations(refused(register_stub, sent, path))
        assert set(found) == {f'profile.facts["{OLD_NAME}"]'}, (path, found)
    status = masked(register_stub, {**sent, "facts": {OLD_NAME: True}}, f"facts.{OLD_NAME}")
    assert facts_to_dict(status.profile.facts) == {NEW_NAME: True}
    assert "CHEM2017:3" in {f.clause_ref for f in status.decision.findings}


def test_a_profile_update_event_with_both_names_of_a_fact_is_refused(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N3, the PROFILE_UPDATED door: refused naming the former name as sent."""
    upsert(register_stub, profile(1, facts={NEW_NAME: False}, **CHEMICALS))
    sent = profile(1, facts={OLD_NAME: True, NEW_NAME: False}, **CHEMICALS)
    event = pb.EnterpriseEvent(
        event_id="both-names",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_PROFILE_UPDATED,
        occurred_on="2026-06-01",
        profile=profile_from_json(sent),
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(info.value)
    assert NEW_NAME in found.get(f'event.profile.facts["{OLD_NAME}"]', ""), found
