"""Periodic re-evaluation: every firm, in batches, resumable; white-list entries expire."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.protobuf import field_mask_pb2
from sqlalchemy import Engine, func, select, text

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.db import make_engine
from services.rules.adapters import migrate
from services.rules.adapters.orm import metadata
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.register import DecisionRecord
from services.rules.entrypoints.convert import profile_from_json
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import decisions, upsert
from tests.integration.rules.test_events import accident
from tests.support import ROOT, profile, uscc


def _decisions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DecisionRecord)).scalar_one())  # type: ignore[arg-type]


def test_interrupted_run_resumes_and_evaluates_each_firm_once(
    register_stub, db_engine, rulebook: Rulebook
) -> None:  # type: ignore[no-untyped-def]
    for n in range(1, 12):
        upsert(register_stub, profile(n))
    ctx = context_from(rulebook)
    as_of = date(2026, 7, 1)
    first = reevaluate_all(UnitOfWork(db_engine), ctx, as_of, batch_size=4, stop_after_batches=2)
    assert (first.processed, first.resumed, first.total) == (8, False, 11)
    second = reevaluate_all(UnitOfWork(db_engine), ctx, as_of, batch_size=4)
    assert (second.run_id, second.processed, second.resumed) == (first.run_id, 11, True)
    assert _decisions(db_engine) == 11 + 11  # one upsert decision + one re-evaluation each
    third = reevaluate_all(UnitOfWork(db_engine), ctx, as_of, batch_size=4)
    assert third.run_id != first.run_id  # a finished run is not resumed: a new run starts


def test_white_list_entry_expires_at_valid_until(register_stub, db_engine, rulebook) -> None:  # type: ignore[no-untyped-def]
    status = upsert(register_stub, profile(1), as_of="2025-06-30")
    assert status.whitelist_entry.valid_until == "2026-06-30"
    ctx = context_from(rulebook)
    reevaluate_all(UnitOfWork(db_engine), ctx, date(2026, 6, 30))  # last valid day: extended
    entry = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    ).whitelist_entry
    assert (entry.granted_on, entry.valid_until) == ("2025-06-30", "2027-06-30")
    upsert(register_stub, profile(2), as_of="2025-06-30")
    reevaluate_all(UnitOfWork(db_engine), ctx, date(2026, 7, 1))  # a day late: expired, regranted
    after = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(2)), timeout=10
    )
    assert (after.whitelist_entry.granted_on, after.whitelist_entry.valid_until) == (
        "2026-07-01",
        "2027-07-01",
    )
    assert decisions(after)[0].reason.endswith("（列入白名单）")  # the old one expired first


def test_cli_reevaluate_all(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    command = [
        sys.executable,
        "-m",
        "services.rules",
        "reevaluate",
        "--all",
        "--db",
        db,
        "--as-of",
        "2026-07-01",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0 of 0 firm(s) done" in result.stdout


def test_migrations_match_the_mapped_tables(db_engine) -> None:  # type: ignore[no-untyped-def]
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_firm_whose_stored_profile_no_longer_validates_is_skipped_not_fatal(
    register_stub, db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update as sql_update

    from services.rules.adapters.orm import firms

    for n in (1, 2, 3):
        upsert(register_stub, profile(n))
    broken = profile(2, facts={"a.key.removed.from.facts.yaml": True})
    with db_engine.begin() as conn:  # as if a fact key were dropped from the registry
        conn.execute(
            sql_update(firms).where(firms.c.enterprise_id == uscc(2)).values(profile=broken)
        )
    summary = reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), date(2026, 7, 1))
    assert summary.skipped == [uscc(2)]
    assert summary.processed == 3
    assert _decisions(db_engine) == 3 + 2  # the two good firms were re-evaluated
    again = reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), date(2026, 7, 1))
    assert again.run_id != summary.run_id  # the run finished; it did not stall


def test_history_may_grow_past_the_request_limit(register_stub) -> None:  # type: ignore[no-untyped-def]
    hazards = [
        {
            "hazard_id": f"H{i}",
            "clause_ref": "GEN:ledger",
            "severity": "general",
            "found_on": "2026-01-01",
            "due_on": "2026-02-01",
            "status": "verified",
            "closed_on": "2026-01-20",
        }
        for i in range(500)
    ]
    upsert(register_stub, profile(7, hazards=hazards))
    status = register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="h-501",
                enterprise_id=uscc(7),
                kind=pb.EVENT_KIND_MAJOR_HAZARD_FOUND,
                occurred_on="2026-06-01",
                hazard=pb.HazardDetail(
                    hazard_id="H500", clause_ref="GM2023:14", due_on="2026-06-20"
                ),
            )
        ),
        timeout=30,
    )
    assert len(status.profile.hazards) == 501
    assert status.decision.status == pb.STATUS_PRIORITY


def test_migration_0008_links_old_entries_to_the_decisions_that_granted_and_revoked_them(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0007")
    firm = uscc(1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO firms (enterprise_id, name, region, profile, created_at, updated_at) "
                "VALUES (:f, 'x', 'r', '{}', '2026-01-01', '2026-01-01')"
            ),
            {"f": firm},
        )
        for i, (as_of, change) in enumerate(
            [("2026-01-05", "granted"), ("2026-03-01", "extended"), ("2026-04-01", "revoked")]
        ):
            conn.execute(
                text(
                    "INSERT INTO decisions (id, enterprise_id, decided_at, as_of, status, "
                    "risk_level, ruleset_version, cause, whitelist_change, payload) VALUES "
                    "(:id, :f, :at, :as_of, 'routine', 'blue', 'v', 'c', :change, '{}')"
                ),
                {
                    "id": f"d{i}",
                    "f": firm,
                    "at": f"{as_of} 08:00:00",
                    "as_of": as_of,
                    "change": change,
                },
            )
        conn.execute(
            text(
                "INSERT INTO whitelist_entries (id, enterprise_id, name, region, granted_on, "
                "valid_until, decision_id, revoked_on, revoked_reason) VALUES "
                "('w1', :f, 'x', 'r', '2026-01-05', '2027-03-01', 'd1', '2026-04-01', 'why')"
            ),
            {"f": firm},
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT granted_decision_id, closed_decision_id FROM whitelist_entries")
        ).one()
    assert tuple(row) == ("d0", "d2")
    engine.dispose()


def test_a_batch_decides_each_firm_as_evaluating_it_alone_would(
    register_stub, db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    """Firms read and locked together, written in one flush: each still gets its own
    decision, its entry moved as one firm's would be, its own audit chain and feed rows."""
    from services.common.audit import verify
    from services.rules.adapters.orm import audit_head, audit_log, changes

    sent = {}
    for n in range(1, 11):
        facts = {"gen.no_hazard_ledger": True} if n % 3 == 0 else {}
        sent[n] = profile(n, facts=facts)
        upsert(register_stub, sent[n], as_of="2025-06-30")  # entries valid until 2026-06-30
    summary = reevaluate_all(
        UnitOfWork(db_engine), context_from(rulebook), date(2026, 7, 1), batch_size=4
    )
    assert (summary.processed, summary.skipped) == (10, [])
    for n, data in sent.items():
        alone = register_stub.Evaluate(
            pb.EvaluateRequest(profile=profile_from_json(data), as_of="2026-07-01"), timeout=10
        )
        status = register_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(n)), timeout=10
        )
        assert (status.decision.status, status.decision.risk_level) == (
            alone.status,
            alone.risk_level,
        )
        assert status.decision.findings == alone.findings
        assert bool(status.whitelist_entry.valid_until) == (n % 3 != 0)
        if n % 3:  # expired a day before, granted anew by the batch
            assert status.whitelist_entry.granted_on == "2026-07-01"
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok
        chains = set(conn.execute(select(audit_log.c.chain)).scalars())
        fed = set(conn.execute(select(changes.c.enterprise_id)).scalars())
    assert chains == fed == {uscc(n) for n in sent}
    assert _decisions(db_engine) == 20


def test_the_indexed_out_of_scope_check_answers_as_the_full_walk(rulebook) -> None:  # type: ignore[no-untyped-def]
    from services.common import workload
    from services.rules.domain.decision import answered_out_of_scope
    from services.rules.domain.profile import parse_profile
    from services.rules.service_layer.reevaluation import out_of_scope

    ctx = context_from(rulebook)
    day = date(2026, 7, 1)
    extra = [  # breaches of clauses for venue types the profiles do not list
        profile(1, facts={"fire.flammables_site_not_isolated": True}),
        profile(2, facts={"fire.exit_count_short": True, "gen.no_hazard_ledger": True}),
    ]
    found = 0
    for data in [*workload.profiles(3000), *extra]:
        p = parse_profile(data, rulebook.fact_types)
        full = answered_out_of_scope(rulebook.catalogue, p, day)
        assert out_of_scope(ctx, p, day) == full
        found += bool(full)
    assert found  # the check was asked something it answers


def test_the_register_never_goes_back_in_time(register_stub, db_engine, rulebook) -> None:  # type: ignore[no-untyped-def]
    """Review hunt 3: a white-listed firm's profile sent again with a past as_of moved its
    entry's end before its own grant, dropping it from the white list (and from 无事不扰)
    while its status still said WHITELIST. Now such an upsert is FAILED_PRECONDITION and
    changes nothing; a re-evaluation of an earlier day leaves a firm decided for a later
    day as it is."""
    granted = upsert(register_stub, profile(1))  # today, 2026-06-30: white-listed
    assert granted.decision.status == pb.STATUS_WHITELIST
    entry = granted.whitelist_entry
    for as_of in ("2020-01-01", "2026-06-29"):
        with pytest.raises(grpc.RpcError) as past:
            upsert(register_stub, profile(1), as_of=as_of)
        assert past.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "before the firm's current decision" in (past.value.details() or "")
    masked = pb.UpsertEnterpriseRequest(
        profile=profile_from_json({"enterprise_id": uscc(1), "employees": 31}),
        as_of="2020-01-01",
        update_mask=field_mask_pb2.FieldMask(paths=["employees"]),
    )
    with pytest.raises(grpc.RpcError) as masked_past:
        register_stub.UpsertEnterprise(masked, timeout=10)
    assert masked_past.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    again = upsert(register_stub, profile(1), as_of="2026-06-30").whitelist_entry  # same day
    assert (again.granted_on, again.valid_until) == (entry.granted_on, entry.valid_until)
    listed = register_stub.ListWhitelist(pb.ListWhitelistRequest(page_size=10), timeout=10)
    assert [e.enterprise_id for e in listed.entries] == [uscc(1)]

    ahead = upsert(register_stub, profile(2), as_of="2026-07-10")  # decided ahead
    summary = reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), date(2020, 1, 1))
    assert summary.processed == 2
    after = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(2)), timeout=10
    )
    assert after.decision.decision_id == ahead.decision.decision_id
    assert after.whitelist_entry == ahead.whitelist_entry
    assert _decisions(db_engine) == 3  # three upserts and none from the run


def test_an_event_decides_a_firm_decided_ahead_for_that_day(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    """Review 20, F1: an event decided as of today even for a firm decided for a later
    day, moving its decision back; a later upsert then slipped past the guard."""
    ahead = upsert(register_stub, profile(1), as_of="2026-09-30")  # the clock: 2026-06-30
    assert ahead.decision.as_of == "2026-09-30"
    after = register_stub.ReportEvent(pb.ReportEventRequest(event=accident(1, "ev-1")), timeout=10)
    assert after.decision.as_of == "2026-09-30" and after.decision.status != pb.STATUS_WHITELIST
    with pytest.raises(grpc.RpcError) as past:
        upsert(register_stub, profile(1), as_of="2026-08-01")
    assert past.value.code() is grpc.StatusCode.FAILED_PRECONDITION
