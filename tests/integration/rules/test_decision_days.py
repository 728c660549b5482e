"""The day a decision speaks for, and what it sees of the firm's records on that day
(review 51), on SQLite and PostgreSQL: hazards as they stood on a given as_of (D2); a
decision the server makes without an as_of counts a record dated tomorrow, within the
clock skew (D1)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.clock import today_shanghai
from services.common.db import make_engine
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain import labels
from services.rules.domain.decision import Decision, Status
from services.rules.entrypoints.convert import event_to_dict, profile_from_json
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer import register_handlers
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import decisions, upsert
from tests.support import ROOT, profile, uscc


def blockers(status: pb.EnterpriseStatus) -> set[str]:
    return {b.code for b in status.decision.whitelist_blockers}


def major_hazard(hazard_id: str, found_on: str, **fields: Any) -> dict[str, Any]:
    return {
        "hazard_id": hazard_id,
        "clause_ref": "GM2023:14",
        "severity": "major",
        "found_on": found_on,
        "due_on": "2026-06-10",
        "status": "open",
    } | fields


# ---------------------------------------------------------------- D2: hazards on as_of


def test_a_past_as_of_sees_each_hazard_as_it_stood_that_day(
    register_stub: RulesServiceStub,
) -> None:
    """A MAJOR hazard verified late on 06-25 was open and overdue on 06-15: the firm was
    RED then (it came out WHITELIST); one found on 06-20 did not exist yet on 06-15 (it
    made the firm RED). As of today (06-30) the first is closed, late."""
    late = major_hazard(
        "H-1", "2026-06-01", status="verified", closed_on="2026-06-25", closed_late=True
    )
    then = upsert(register_stub, profile(1, hazards=[late]), as_of="2026-06-15")
    assert (then.decision.status, then.decision.risk_level) == (
        pb.STATUS_PRIORITY,
        pb.RISK_LEVEL_RED,
    )
    assert [f.clause_ref for f in then.decision.findings] == ["GM2023:14"]
    assert blockers(then) == {"risk_not_blue", "open_hazard"}
    assert not then.HasField("whitelist_entry")
    now = upsert(register_stub, profile(1, hazards=[late]))  # as of today, 2026-06-30
    assert (now.decision.status, blockers(now)) == (pb.STATUS_ROUTINE, {"late_rectification"})
    found_later = major_hazard("H-2", "2026-06-20", due_on="2026-07-20")
    before = upsert(register_stub, profile(2, hazards=[found_later]), as_of="2026-06-15")
    assert (before.decision.status, list(before.decision.findings)) == (pb.STATUS_WHITELIST, [])
    assert before.whitelist_entry.granted_on == "2026-06-15"


# ---------------------------------------------------------------- D1: records dated tomorrow

TOMORROW = "2026-07-01"  # the conftest clock's today is 2026-06-30; a day of skew is taken
FATAL = {"occurred_on": TOMORROW, "level": "general", "deaths": 1}


def status_of(stub: RulesServiceStub, n: int) -> pb.EnterpriseStatus:
    return stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(n), history_limit=50), timeout=10
    )


def assert_red_as_of_tomorrow(status: pb.EnterpriseStatus) -> None:
    decision = status.decision
    assert (decision.as_of, decision.status, decision.risk_level) == (
        TOMORROW,
        pb.STATUS_PRIORITY,
        pb.RISK_LEVEL_RED,
    )
    assert decision.inspection_due_on == "2026-07-31"
    assert "12个月内发生造成人员死亡的生产安全事故" in decision.risk_reasons
    assert {"risk_not_blue", "recent_accident"} <= blockers(status)
    assert not status.HasField("whitelist_entry")


def test_a_fatal_accident_dated_tomorrow_counts_at_once_and_keeps_counting(
    register_stub: RulesServiceStub,
) -> None:
    """Review 51 D1: an ACCIDENT dated tomorrow (within the clock skew) was on file but in
    no window of a decision as of today: the firm stayed BLUE, a PROFILE_UPDATED the same
    day put it back on the white list, and the gate refused routine visits (无事不扰). The
    event's decision is as of the accident's day, and so is every later one of the day."""
    upsert(register_stub, profile(1))
    reported = register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="acc-tomorrow",
                enterprise_id=uscc(1),
                kind=pb.EVENT_KIND_ACCIDENT,
                occurred_on=TOMORROW,
                accident=pb.AccidentDetail(level=pb.ACCIDENT_LEVEL_GENERAL, deaths=1),
            )
        ),
        timeout=30,
    )
    assert_red_as_of_tomorrow(reported)
    assert "revoked_by_event" in blockers(reported)
    updated = register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="pu-today",
                enterprise_id=uscc(1),
                kind=pb.EVENT_KIND_PROFILE_UPDATED,
                occurred_on="2026-06-30",
                profile=profile_from_json(profile(1, employees=31)),
            )
        ),
        timeout=30,
    )
    assert_red_as_of_tomorrow(updated)
    assert [a.occurred_on for a in updated.profile.accidents] == [TOMORROW]
    visit = register_stub.CheckInspection(
        pb.CheckInspectionRequest(
            enterprise_id=uscc(1),
            authority="A",
            kind=pb.INSPECTION_KIND_ROUTINE,
            planned_on="2026-06-30",
        ),
        timeout=30,
    )
    assert (visit.allowed, visit.reason_code) == (True, "allowed")


def test_upsert_and_evaluate_without_as_of_count_a_record_dated_tomorrow(
    register_stub: RulesServiceStub,
) -> None:
    """The same through UpsertEnterprise (its records are taken up to the clock skew
    ahead, events.recorded_ahead) and Evaluate. Evaluate, which stores nothing, keeps an
    as_of it is given, records after it ignored."""
    assert_red_as_of_tomorrow(upsert(register_stub, profile(1, accidents=[FATAL])))
    evaluated = register_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile(3, accidents=[FATAL]))), timeout=10
    )
    assert (evaluated.as_of, evaluated.status) == (TOMORROW, pb.STATUS_PRIORITY)
    asked = register_stub.Evaluate(
        pb.EvaluateRequest(
            profile=profile_from_json(profile(3, accidents=[FATAL])), as_of="2026-06-30"
        ),
        timeout=10,
    )
    assert (asked.as_of, asked.status) == ("2026-06-30", pb.STATUS_WHITELIST)
    penalty = {"decided_on": "2026-06-29", "amount_yuan": 100.0, "basis": "x"}
    plain = register_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile(4, penalties=[penalty]))),
        timeout=10,
    )
    assert plain.as_of == "2026-06-30"  # records of today or before: today, as always


def test_an_upsert_as_of_today_counts_a_record_dated_tomorrow(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N1: an UpsertEnterprise with as_of today (a nightly sync sends it) was
    decided as of today, blind to a fatal accident dated tomorrow it had just taken: the
    firm white-listed for 12 months, the gate refusing visits on the accident's day. An
    as_of of today or later is raised to the newest record's day (at most tomorrow); a
    past as_of is kept as given (a historical decision, reproducible); a later one too."""
    today = upsert(register_stub, profile(1, accidents=[FATAL]), as_of="2026-06-30")
    assert_red_as_of_tomorrow(today)
    visit = register_stub.CheckInspection(
        pb.CheckInspectionRequest(
            enterprise_id=uscc(1),
            authority="A",
            kind=pb.INSPECTION_KIND_ROUTINE,
            planned_on=TOMORROW,
        ),
        timeout=30,
    )
    assert (visit.allowed, visit.reason_code) == (True, "allowed")
    past = upsert(register_stub, profile(2, accidents=[FATAL]), as_of="2026-06-29")
    assert (past.decision.as_of, past.decision.status) == ("2026-06-29", pb.STATUS_WHITELIST)
    later = upsert(register_stub, profile(2, accidents=[FATAL]), as_of="2026-07-05")
    assert (later.decision.as_of, later.decision.status) == ("2026-07-05", pb.STATUS_PRIORITY)


def test_an_upsert_as_of_today_after_an_event_dated_tomorrow_is_taken(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N12: after an ACCIDENT dated tomorrow (the firm decided as of tomorrow),
    an UpsertEnterprise with as_of today was FAILED_PRECONDITION until midnight (before
    the firm's current decision). Its as_of is raised to the accident's day now."""
    upsert(register_stub, profile(1))
    register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="acc-tomorrow",
                enterprise_id=uscc(1),
                kind=pb.EVENT_KIND_ACCIDENT,
                occurred_on=TOMORROW,
                accident=pb.AccidentDetail(level=pb.ACCIDENT_LEVEL_GENERAL, deaths=1),
            )
        ),
        timeout=30,
    )
    synced = upsert(register_stub, profile(1, employees=31), as_of="2026-06-30")
    assert_red_as_of_tomorrow(synced)
    assert [a.occurred_on for a in synced.profile.accidents] == [TOMORROW]


def test_reevaluate_all_as_of_today_decides_as_the_server_does(
    register_stub: RulesServiceStub, db_engine: Engine, rulebook: Rulebook
) -> None:
    """`reevaluate --all` as of today, given or not (review 53 N1: `--as-of` today left a
    firm white-listed with a fatal accident dated tomorrow on file), decides a firm with a
    record dated tomorrow as of tomorrow, as events and upserts do; as of a past day it
    decides every firm as of that day exactly, records after it ignored. A firm decided
    as of tomorrow already is left alone by a run of a past day."""
    ctx = context_from(rulebook, today=lambda: date(2026, 6, 30))
    upsert(register_stub, profile(1, accidents=[FATAL]))  # RED as of tomorrow
    upsert(register_stub, profile(2, accidents=[FATAL]), as_of="2026-06-28")  # as asked
    past = reevaluate_all(UnitOfWork(db_engine), ctx, date(2026, 6, 29))
    assert_red_as_of_tomorrow(status_of(register_stub, 1))  # left alone: decided later
    given = status_of(register_stub, 2)
    assert (given.decision.as_of, given.decision.status) == ("2026-06-29", pb.STATUS_WHITELIST)
    assert len(decisions(given)) == 2  # re-decided as of the day given
    today = reevaluate_all(UnitOfWork(db_engine), ctx, date(2026, 6, 30))
    assert_red_as_of_tomorrow(status_of(register_stub, 1))
    assert_red_as_of_tomorrow(status_of(register_stub, 2))
    assert (past.raised, past.ahead, past.processed) == (False, 0, 2)
    assert (today.raised, today.ahead, today.processed) == (True, 2, 2)


def test_a_run_resumes_only_under_the_rule_it_started_with(
    register_stub: RulesServiceStub, db_engine: Engine, rulebook: Rulebook
) -> None:
    """Review 53 N11: a run was found again by its day alone, so a run begun as of today
    (raised for a record dated tomorrow) and resumed once that day had passed, as a past
    day's run, finished under the other rule, or the reverse; its summary named the run's
    day for firms decided as of the next. A run keeps its mode: resumed under the same,
    not resumed under another (a new run starts, and says which rule it follows)."""
    for n in (1, 2):
        upsert(register_stub, profile(n, accidents=[FATAL]), as_of="2026-06-28")
    on_the_day = context_from(rulebook, today=lambda: date(2026, 6, 30))
    first = reevaluate_all(
        UnitOfWork(db_engine), on_the_day, date(2026, 6, 30), batch_size=1, stop_after_batches=1
    )
    assert (first.raised, first.ahead, first.processed) == (True, 1, 1)
    next_day = context_from(rulebook, today=lambda: date(2026, 7, 1))
    other = reevaluate_all(UnitOfWork(db_engine), next_day, date(2026, 6, 30), batch_size=1)
    assert other.run_id != first.run_id and not other.resumed
    assert (other.raised, other.ahead, other.processed) == (False, 0, 2)
    assert status_of(register_stub, 2).decision.as_of == "2026-06-30"  # exactly, as asked
    assert status_of(register_stub, 1).decision.as_of == TOMORROW  # left: decided later
    same = reevaluate_all(UnitOfWork(db_engine), on_the_day, date(2026, 6, 30), batch_size=1)
    assert same.run_id == first.run_id and same.resumed
    assert (same.raised, same.ahead, same.processed) == (True, 2, 2)
    assert_red_as_of_tomorrow(status_of(register_stub, 2))


def test_grouped_events_and_upserts_decide_as_one_by_one_do(
    register_stub: RulesServiceStub, db_engine: Engine, rulebook: Rulebook
) -> None:
    """The group commit (ReportEvent and UpsertEnterprise calls that arrive together)
    decides in memory by the same rule: as of the accident's day."""
    upsert(register_stub, profile(1))
    upsert(register_stub, profile(2))
    ctx = context_from(rulebook, today=lambda: date(2026, 6, 30))
    sent = [
        pb.EnterpriseEvent(
            event_id="acc-tomorrow",
            enterprise_id=uscc(1),
            kind=pb.EVENT_KIND_ACCIDENT,
            occurred_on=TOMORROW,
            accident=pb.AccidentDetail(level=pb.ACCIDENT_LEVEL_GENERAL, deaths=1),
        ),
        pb.EnterpriseEvent(
            event_id="pu-today",
            enterprise_id=uscc(1),
            kind=pb.EVENT_KIND_PROFILE_UPDATED,
            occurred_on="2026-06-30",
            profile=profile_from_json(profile(1)),
        ),
    ]
    items = [
        register_handlers.Reported(*register_handlers.parse_reported(ctx, event_to_dict(e)), "t")
        for e in sent
    ]
    upserted = register_handlers.parse_upserted(ctx, profile(2, accidents=[FATAL]), "")
    answers = [
        *register_handlers.apply_group(lambda: UnitOfWork(db_engine), ctx, items),
        *register_handlers.apply_upsert_group(lambda: UnitOfWork(db_engine), ctx, [upserted]),
    ]
    for answer in answers:
        assert isinstance(answer, register_handlers.StatusView), answer
        assert (answer.decision.as_of, answer.decision.status) == (
            date(2026, 7, 1),
            Status.PRIORITY,
        )
    assert_red_as_of_tomorrow(status_of(register_stub, 1))
    assert_red_as_of_tomorrow(status_of(register_stub, 2))


# ---------------------------------------------------------------- C2: what an event revokes


def penalty_event(n: int, event_id: str) -> pb.EnterpriseEvent:
    return pb.EnterpriseEvent(
        event_id=event_id,
        enterprise_id=uscc(n),
        kind=pb.EVENT_KIND_PENALTY,
        occurred_on="2026-06-30",
        penalty=pb.PenaltyDetail(amount_yuan=2000.0, basis="《安全生产法》第九十七条"),
    )


def reported(stub: RulesServiceStub, event: pb.EnterpriseEvent) -> pb.EnterpriseStatus:
    return stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)


def revocations(status: pb.EnterpriseStatus) -> list[str]:
    return [h.reason for h in status.history if h.kind == "whitelist_revoked"]


def test_only_an_entry_in_force_is_revoked_by_an_event(register_stub: RulesServiceStub) -> None:
    """Review 51 C2: "白名单因事件撤销" (revoked_by_event) was added for a firm that was
    never on the white list, or whose entry had ended, or was revoked by an event before.
    It comes only with the revocation of an entry in force on the decision's day."""
    upsert(register_stub, profile(1, specialized_sme=False))  # never listed
    never = reported(register_stub, penalty_event(1, "p-never"))
    assert blockers(never) == {"risk_not_blue", "not_specialized_sme", "recent_penalty"}
    upsert(register_stub, profile(2), as_of="2025-06-01")  # listed until 2026-06-01
    ended = reported(register_stub, penalty_event(2, "p-ended"))
    assert blockers(ended) == {"risk_not_blue", "recent_penalty"}
    # it expired (valid_until passed), the event revoked nothing
    assert revocations(ended) == ["有效期届满"]
    upsert(register_stub, profile(3))  # listed today
    first = reported(register_stub, penalty_event(3, "p-first"))
    assert "revoked_by_event" in blockers(first)
    assert revocations(first) == ["白名单因事件撤销：行政处罚2000元"]
    second = reported(register_stub, penalty_event(3, "p-second"))
    assert blockers(second) == {"risk_not_blue", "recent_penalty"}  # nothing left to revoke


def test_an_event_dated_while_the_entry_was_valid_revokes_it_after_its_end(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N4: a PENALTY dated 2026-05-20, while the entry (valid to 2026-06-01) was
    in force, reported on 06-30 after its end, closed it as expired and recorded no
    revocation: whether the event revokes was judged on the decision's day. It is judged
    on the event's day: the entry is revoked, on its last day (the list as it stood is
    kept), and the history shows the revocation with the event's reason."""
    upsert(register_stub, profile(1), as_of="2025-06-01")  # listed until 2026-06-01
    event = penalty_event(1, "p-late")
    event.occurred_on = "2026-05-20"
    late = reported(register_stub, event)
    assert blockers(late) == {"revoked_by_event", "risk_not_blue", "recent_penalty"}
    assert revocations(late) == ["白名单因事件撤销：行政处罚2000元"]
    [item] = [h for h in late.history if h.kind == "whitelist_revoked"]
    entry = item.whitelist_entry
    assert (entry.revoked_on, entry.valid_until) == ("2026-06-01", "2026-06-01")
    assert decisions(late)[0].reason.endswith(labels.whitelist_change("revoked"))


def test_a_group_revokes_a_lapsed_entry_as_one_event_alone_does(
    register_stub: RulesServiceStub, db_engine: Engine, rulebook: Rulebook
) -> None:
    """The same late PENALTY through the group commit (ReportEvent calls that arrive
    together, decided in memory): revoked on the entry's last day, with the event's
    reason, as `test_an_event_dated_while_the_entry_was_valid_revokes_it_after_its_end`."""
    upsert(register_stub, profile(1), as_of="2025-06-01")  # listed until 2026-06-01
    ctx = context_from(rulebook, today=lambda: date(2026, 6, 30))
    event = penalty_event(1, "p-late")
    event.occurred_on = "2026-05-20"
    item = register_handlers.Reported(
        *register_handlers.parse_reported(ctx, event_to_dict(event)), "t"
    )
    [answer] = register_handlers.apply_group(lambda: UnitOfWork(db_engine), ctx, [item])
    assert isinstance(answer, register_handlers.StatusView), answer
    assert "revoked_by_event" in {b.code for b in answer.decision.whitelist_blockers}
    status = status_of(register_stub, 1)
    assert revocations(status) == ["白名单因事件撤销：行政处罚2000元"]
    [closed] = [h.whitelist_entry for h in status.history if h.kind == "whitelist_revoked"]
    assert closed.revoked_on == "2026-06-01"


def test_the_reevaluate_command_as_of_today_decides_as_the_server_does(
    tmp_path: Path, rulebook: Rulebook
) -> None:
    """`reevaluate --all` as of a past day decides exactly as of it; as of today, given or
    not (review 53 N1: `--as-of` today left the firm white-listed), a firm with a fatal
    accident dated tomorrow on file as of tomorrow; and its summary line says which rule
    it followed and how many firms it decided for the next day (review 53 N11: "as of"
    the run's day for decisions of the next). Real dates: the command reads the real
    clock."""
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate.upgrade(engine)
    today = today_shanghai()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    fatal = {"occurred_on": tomorrow.isoformat(), "level": "general", "deaths": 1}
    ctx = context_from(rulebook)
    asked = register_handlers.upsert_enterprise(
        UnitOfWork(engine), ctx, profile(1, accidents=[fatal]), yesterday.isoformat()
    )
    assert asked.decision.status is Status.WHITELIST

    def run(*extra: str) -> tuple[Decision, str]:
        command = [sys.executable, "-m", "services.rules", "reevaluate", "--all"]
        done = subprocess.run(
            [*command, "--db", str(engine.url), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        status = register_handlers.get_status(UnitOfWork(engine), ctx, uscc(1))
        return status.decision, done.stdout

    past, said = run("--as-of", yesterday.isoformat())
    assert (past.as_of, past.status) == (yesterday, Status.WHITELIST)
    assert f"as of {yesterday} (exactly; records dated later ignored): 1 of 1" in said
    given, said = run("--as-of", today.isoformat())
    own, said_own = run()
    engine.dispose()
    if today_shanghai() != today:
        pytest.skip("the day changed while the test ran")
    assert (given.as_of, given.status) == (tomorrow, Status.PRIORITY)
    assert f"as of {today} (1 firm(s) with a record dated {tomorrow} as of {tomorrow})" in said
    assert (own.as_of, own.status) == (tomorrow, Status.PRIORITY)
    assert f"as of {today} (1 firm(s) with a record dated {tomorrow}" in said_own
