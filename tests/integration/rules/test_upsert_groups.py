"""UpsertEnterprise's group commit (event_groups.UpsertGroups) on SQLite and PostgreSQL:
upserts that arrive together are applied in one transaction and answer, and store,
exactly what the same upserts applied one after another do (two of one firm, an entry
revoked and granted again within the group, one extended under a new name and moved to
another region, firms new to the register stored by the group); one refused by the
rules (an as_of before the firm's current decision, a clause it may not cite, a record
dated after today) fails alone; a
new firm stored by another transaction first sends the group call by call; a failed
commit answers every caller with the error; an upsert with an update mask is never
grouped."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import Engine, func, select

from services.common.audit import verify
from services.common.context import Principal, bind
from services.rules.adapters.orm import audit_head, audit_log, decisions
from services.rules.entrypoints import convert, grpc_server
from services.rules.service_layer import register_handlers
from services.rules.service_layer.event_groups import GroupLimits, UpsertGroups
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock
from tests.integration.rules.test_reevaluation_bulk import _rows
from tests.support import profile, uscc

ONE_BY_ONE, GROUPED = "91330782MA2", "91330782MB2"  # the same firms under two heads
FIRMS = 5
HAZARD = {
    "hazard_id": "H1",
    "clause_ref": "GEN:ledger",
    "severity": "general",
    "found_on": "2026-06-01",
    "due_on": "2026-07-01",
    "status": "open",
}
AHEAD = {"occurred_on": "2026-07-05", "level": "general", "deaths": 0}  # after Clock's today
# (firm number, profile fields, as_of, what it answers): sent in this order
SENT: list[tuple[int, dict[str, Any], str, str]] = [
    (1, {"hazards": [HAZARD]}, "", "ok"),
    (1, {"name": "改名企业1"}, "", "ok"),  # the first's hazard kept: records only grow
    (2, {}, "2026-06-01", "PreconditionFailed"),  # before its decision of 2026-06-30
    (3, {"hazards": [{**HAZARD, "clause_ref": "NO:such"}]}, "", "ValidationError"),
    (4, {"blacklisted": True}, "", "ok"),  # its entry revoked
    (4, {}, "", "ok"),  # off the black list: on the white list again
    # still white-listed, moved to another region (镇街): the entry renamed and moved
    (5, {"name": "改名企业5", "region": "北苑街道"}, "", "ok"),
    (3, {"accidents": [AHEAD]}, "", "ValidationError"),  # recorded after today
    (2, {"employees": 40}, "2026-07-01", "ok"),
    (7, {"hazards": [{**HAZARD, "clause_ref": "NO:such"}]}, "", "ValidationError"),  # new
    (6, {}, "", "ok"),  # new to the register: stored by the group
    (7, {"blacklisted": True}, "", "ok"),  # new, though its first upsert above failed
    # the firm the group stored, its entry renamed, moved to another region
    (6, {"name": "改名企业6", "region": "北苑街道"}, "", "ok"),
]
NEW = 2  # firms 6 and 7, not in the register before the group


def _firm(head: str, n: int, **fields: Any) -> dict[str, Any]:
    return profile(n, enterprise_id=uscc(n, head), **fields)


def _groups(engine: Engine, rulebook: Any, size: int, uow: type[UnitOfWork] = UnitOfWork) -> Any:
    """A grouper whose one group holds all `size` upserts (its leader waits for them, as
    a leader does while calls have been coming together)."""
    groups = UpsertGroups(
        lambda: uow(engine),
        grpc_server.context_from(rulebook, Clock()),
        GroupLimits(size, max_wait=30.0, groups=1),
    )
    groups.calls._last_size = 2
    return groups


def _sent_together(
    groups: UpsertGroups, sent: list[tuple[dict[str, Any], str]], callers: list[str] | None = None
) -> list[Any]:
    """Each upsert from a thread of its own (as its caller, when named), the next once
    the one before is queued: their answers or errors, in the order sent."""
    answers: dict[int, Any] = {}

    def call(n: int) -> None:
        if callers:
            bind(Principal(callers[n]))
        data, as_of = sent[n]
        try:
            answers[n] = groups.upsert(data, as_of, [])
        except Exception as exc:
            answers[n] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(sent))]
    for n, thread in enumerate(threads):
        thread.start()
        waited = time.monotonic() + (30 if n < len(sent) - 1 else 0)  # the last: taken
        while groups.calls.waiting() <= n and time.monotonic() < waited:
            time.sleep(0.005)
    for thread in threads:
        thread.join(60)
    return [answers.get(n) for n in range(len(sent))]


def _answer(answer: Any, head: str) -> Any:
    """An answer comparable across the two heads: the status with ids and instants left
    out, or the error's kind."""
    if isinstance(answer, Exception):
        return type(answer).__name__
    status = MessageToDict(convert.status_to_proto(answer))
    text = json.dumps(status, sort_keys=True, ensure_ascii=False)
    for n in range(1, FIRMS + NEW + 1):
        text = text.replace(uscc(n, head), uscc(n, ONE_BY_ONE))
    text = re.sub(r'"(decisionId|id|grantedDecisionId)": "[0-9a-f]+"', r'"\1": ""', text)
    return json.loads(re.sub(r'"recordedAt": "[^"]+"', '"recordedAt": ""', text))


def _register(engine: Engine, rulebook: Any, head: str) -> None:
    """The firms as the group finds them: each upserted once, as of 2026-06-30."""
    ctx = grpc_server.context_from(rulebook, Clock())
    for n in range(1, FIRMS + 1):
        register_handlers.upsert_enterprise(UnitOfWork(engine), ctx, _firm(head, n), "2026-06-30")


def test_a_group_answers_and_stores_what_one_by_one_does(db_engine: Engine, rulebook: Any) -> None:
    ctx = grpc_server.context_from(rulebook, Clock())
    plain = []
    for head in (ONE_BY_ONE, GROUPED):
        _register(db_engine, rulebook, head)
    for n, fields, as_of, _ in SENT:
        try:
            plain.append(
                register_handlers.upsert_enterprise(
                    UnitOfWork(db_engine), ctx, _firm(ONE_BY_ONE, n, **fields), as_of
                )
            )
        except Exception as exc:
            plain.append(exc)
    groups = _groups(db_engine, rulebook, len(SENT))
    together = _sent_together(groups, [(_firm(GROUPED, n, **f), a) for n, f, a, _ in SENT])
    for n, ((_, _, _, expected), first, second) in enumerate(
        zip(SENT, plain, together, strict=True)
    ):
        assert _answer(second, GROUPED) == _answer(first, ONE_BY_ONE), f"upsert {n}"
        assert (expected == "ok") == (not isinstance(first, Exception)), f"upsert {n}: {first}"
        if expected != "ok":
            assert type(first).__name__ == expected, f"upsert {n}"
    assert groups.calls.limits.max_size == len(SENT)
    rows = _rows(db_engine, GROUPED, FIRMS + NEW, ONE_BY_ONE)
    assert rows == _rows(db_engine, ONE_BY_ONE, FIRMS + NEW, ONE_BY_ONE)
    # what the group did (so the comparison above covers it): firm 4's entry revoked and
    # a new one granted; firm 5's extended under its new name; firm 1 decided twice
    kinds = [c["kind"] for c in rows["4"]["feed"]]
    assert kinds[-4:] == [
        "decision_changed",
        "whitelist_revoked",
        "decision_changed",
        "whitelist_granted",
    ]
    # firms 5 and 6 moved: seen leaving one region and joining the other (review 58 F2)
    for n in ("5", "6"):
        moves = [(c["kind"], c["region"]) for c in rows[n]["feed"]][-2:]
        assert moves == [("region_left", "稠城街道"), ("region_joined", "北苑街道")], n
    assert together[6].entry.name == "改名企业5"
    assert len(rows["1"]["decisions"]) == 3
    assert [h.hazard_id for h in together[1].profile.hazards] == ["H1"]
    assert [a["action"] for a in rows["6"]["audit"]].count("create") == 4  # firm, entry,
    assert together[-1].entry.name == "改名企业6"  # two decisions
    assert [h.kind for h in together[-1].history].count("decision") == 2
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok


def test_the_group_was_one_transaction(db_engine: Engine, rulebook: Any, monkeypatch: Any) -> None:
    """The grouped upserts went through `apply_upsert_group`'s batch, not call by call."""
    _register(db_engine, rulebook, GROUPED)
    ones: list[Any] = []
    real = register_handlers.apply_upserted
    monkeypatch.setattr(register_handlers, "apply_upserted", lambda *a: ones.append(a) or real(*a))
    monkeypatch.setattr(
        "services.rules.service_layer.event_groups.apply_upserted",
        register_handlers.apply_upserted,
    )
    sent = [(_firm(GROUPED, n, employees=40 + n), "") for n in (1, 2, 3)]
    answers = _sent_together(_groups(db_engine, rulebook, len(sent)), sent)
    assert [a.profile.employees for a in answers] == [41, 42, 43]
    assert ones == []


def test_a_new_firm_stored_first_by_another_transaction_sends_the_group_call_by_call(
    db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """PostgreSQL (SQLite's one writer keeps others out): firm 9 is new when the group
    reads, but another transaction stores it before the group writes; the group's insert
    fails, and the group is applied call by call, which finds firm 9 stored."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("a concurrent writer within a group's transaction is PostgreSQL's")
    _register(db_engine, rulebook, GROUPED)
    ctx = grpc_server.context_from(rulebook, Clock())
    real = register_handlers._sent_checked
    raced: list[str] = []

    def sent_checked(c: Any, sent: Any, stored: Any, *rest: Any) -> Any:
        if stored is None and not raced:  # the group's first sight of firm 9: it races
            raced.append(sent.enterprise_id)
            done = threading.Thread(
                target=register_handlers.upsert_enterprise,
                args=(UnitOfWork(db_engine), ctx, _firm(GROUPED, 9, employees=90), ""),
            )
            done.start()
            done.join(30)
        return real(c, sent, stored, *rest)

    monkeypatch.setattr(register_handlers, "_sent_checked", sent_checked)
    sent = [(_firm(GROUPED, 1, employees=41), ""), (_firm(GROUPED, 9, name="新企业9"), "")]
    answers = _sent_together(_groups(db_engine, rulebook, len(sent)), sent)
    assert raced == [uscc(9, GROUPED)]
    assert not any(isinstance(a, Exception) for a in answers), answers
    assert answers[0].profile.employees == 41
    assert answers[1].profile.name == "新企业9"
    assert [h.kind for h in answers[1].history].count("decision") == 2  # the racer's too
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok


class _CommitFails(UnitOfWork):
    """The register, except that committing fails (a disk gone at the last moment)."""

    def commit(self) -> None:
        raise RuntimeError("commit refused (injected)")


def test_a_failed_commit_answers_every_caller_of_the_group_with_an_error(
    db_engine: Engine, rulebook: Any
) -> None:
    _register(db_engine, rulebook, GROUPED)
    with db_engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(decisions)).scalar()
    sent = [(_firm(GROUPED, n, employees=50), "") for n in (1, 2, 3)]
    answers = _sent_together(_groups(db_engine, rulebook, len(sent), _CommitFails), sent)
    assert all(isinstance(a, RuntimeError) for a in answers), answers
    with db_engine.connect() as conn:  # nothing of the group stands
        assert conn.execute(select(func.count()).select_from(decisions)).scalar() == before


@pytest.mark.parametrize("mask", [["name"], ["facts.gen.training_missing"]])
def test_an_upsert_with_a_mask_is_not_grouped(
    db_engine: Engine, rulebook: Any, mask: list[str]
) -> None:
    _register(db_engine, rulebook, GROUPED)
    groups = _groups(db_engine, rulebook, 2)
    data = _firm(GROUPED, 1, name="只改名称", facts={"gen.training_missing": True})
    answer = groups.upsert(data, "", mask)  # a group of 2 would wait 30 s for a second
    assert groups.calls.waiting() == 0
    if mask == ["name"]:
        assert answer.profile.name == "只改名称" and answer.profile.facts == {}
    else:
        assert answer.profile.name != "只改名称"
        assert answer.profile.facts == {"gen.training_missing": True}


def test_each_upsert_of_a_group_is_audited_as_its_own_callers(
    db_engine: Engine, rulebook: Any
) -> None:
    _register(db_engine, rulebook, GROUPED)
    with db_engine.connect() as conn:
        first = conn.execute(select(func.max(audit_log.c.id))).scalar()
    sent = [(_firm(GROUPED, n, employees=60), "") for n in (1, 2, 3)]
    callers = ["market-regulation", "inspector-a", "inspector-b"]
    answers = _sent_together(_groups(db_engine, rulebook, len(sent)), sent, callers)
    assert not any(isinstance(a, Exception) for a in answers), answers
    with db_engine.connect() as conn:
        for n, caller in enumerate(callers, start=1):
            query = select(audit_log.c.caller).where(
                audit_log.c.chain == uscc(n, GROUPED), audit_log.c.id > first
            )
            assert set(conn.execute(query).scalars()) == {caller}, n


def test_a_stalled_database_fails_the_group_at_once_not_upsert_by_upsert(
    db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """As ReportEvent's groups (review 20 F2): a statement timeout inside the group fails
    every caller of it as unavailable at once; no upsert is tried again on its own, each
    waiting out the stall again, and nothing of the group is stored."""
    from services.common.db import DbTimeouts, make_engine
    from tests.integration.rules.test_event_groups import _Held

    if db_engine.dialect.name == "sqlite":
        pytest.skip("a table lock that lets the group's first reads through is PostgreSQL's")
    _register(db_engine, rulebook, GROUPED)
    alone: list[Any] = []
    real = register_handlers.apply_upserted
    monkeypatch.setattr(register_handlers, "apply_upserted", lambda *a: alone.append(a) or real(*a))
    with db_engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(decisions)).scalar()
    stalled = make_engine(
        db_engine.url.render_as_string(hide_password=False), timeouts=DbTimeouts(statement=1.0)
    )
    sent = [(_firm(GROUPED, n, employees=70), "") for n in (1, 2, 3, 4)]
    with _Held(db_engine, "decisions", 8):
        answers = _sent_together(_groups(stalled, rulebook, len(sent)), sent)
    stalled.dispose()
    assert all(isinstance(a, Exception) and UnitOfWork.unavailable(a) for a in answers), answers
    assert alone == []
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(decisions)).scalar() == before
