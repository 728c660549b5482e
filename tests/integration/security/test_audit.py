"""The audit trail: every state change recorded with caller, before and after, chained by
hashes; editing, deleting or cutting rows in the database is caught by `audit verify`."""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, select, update

from services.booking.adapters.orm import audit_head as b_head
from services.booking.adapters.orm import audit_log as b_log
from services.common import audit_anchor
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.audit import VerifyReport, append, chains_of, verify, verify_command
from services.common.db import read_snapshot
from services.rules.adapters.orm import audit_head, audit_log
from tests.booking_env import Pair, ledger_visit, running_pair
from tests.integration.conftest import upsert
from tests.support import ROOT, profile, uscc


def _report(engine: Engine, log=audit_log, head=audit_head):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return verify(conn, log, head)


def _entries(engine: Engine, log=audit_log) -> list:  # type: ignore[no-untyped-def,type-arg]
    with engine.connect() as conn:
        return list(conn.execute(select(log).order_by(log.c.id)))


def _some_history(stub) -> None:  # type: ignore[no-untyped-def]
    upsert(stub, profile(1))
    stub.ReportEvent(
        rpb.ReportEventRequest(
            event=rpb.EnterpriseEvent(
                event_id="acc-1",
                enterprise_id=uscc(1),
                kind=rpb.EVENT_KIND_ACCIDENT,
                occurred_on="2026-06-01",
                accident=rpb.AccidentDetail(level=rpb.ACCIDENT_LEVEL_GENERAL),
            )
        ),
        timeout=10,
    )
    stub.CheckInspection(
        rpb.CheckInspectionRequest(
            enterprise_id=uscc(1),
            authority="义乌市应急管理局",
            kind=rpb.INSPECTION_KIND_ROUTINE,
            planned_on="2026-07-01",
        ),
        timeout=10,
    )


def test_every_change_is_recorded_with_before_and_after(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _some_history(register_stub)
    rows = _entries(db_engine)
    kinds = {(r.entity, r.action) for r in rows}
    assert {
        ("firm", "create"),
        ("decision", "create"),
        ("whitelist_entry", "create"),
        ("whitelist_entry", "update"),
        ("event", "create"),
        ("inspection", "create"),
        ("firm", "update"),
    } <= kinds
    revoked = next(r for r in rows if r.entity == "whitelist_entry" and r.action == "update")
    assert revoked.before["revoked_on"] is None and revoked.after["revoked_on"] is not None
    assert all(r.caller for r in rows)
    assert _report(db_engine).ok


def test_an_edited_row_breaks_the_chain_there(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _some_history(register_stub)
    rows = _entries(db_engine)
    target = next(r for r in rows if r.entity == "whitelist_entry" and r.action == "update")
    with db_engine.begin() as conn:  # someone quietly "un-revokes" the white list
        conn.execute(
            update(audit_log)
            .where(audit_log.c.id == target.id)
            .values(after={**target.after, "revoked_on": None})
        )
    report = _report(db_engine)
    assert (report.ok, report.broken_at) == (False, target.id)
    assert "edited" in report.reason


def test_a_deleted_row_and_a_cut_tail_are_caught(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _some_history(register_stub)
    rows = _entries(db_engine)
    with db_engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == rows[-1].id))
    cut = _report(db_engine)
    assert not cut.ok and "end" in cut.reason
    with db_engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == rows[2].id))
    gap = _report(db_engine)
    assert (gap.ok, gap.broken_at) == (False, rows[3].id)


def test_the_chain_stays_linear_under_concurrent_writers(register_stub, db_engine, clock) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(2, specialized_sme=False, standardization_grade=0))
    start = clock.today
    with ThreadPoolExecutor(10) as pool:
        list(
            pool.map(
                lambda i: register_stub.CheckInspection(
                    rpb.CheckInspectionRequest(
                        enterprise_id=uscc(2),
                        authority=f"主体{i}",
                        kind=rpb.INSPECTION_KIND_ROUTINE,
                        planned_on=(start + timedelta(days=20 * i)).isoformat(),
                    ),
                    timeout=60,
                ),
                range(10),
            )
        )
    report = _report(db_engine)
    assert report.ok and report.entries >= 12


def test_cli_audit_verify_reports_the_first_broken_entry(tmp_path: Path) -> None:
    with running_pair(tmp_path) as pair:
        _booking_history(pair)
        rows = _entries(pair.booking_engine, b_log)
        assert {r.entity for r in rows} >= {
            "firm",
            "expert",
            "order",
            "assignment",
            "visit",
            "ticket",
            "photo",
        }
        phones = [r for r in rows if r.entity == "order" and r.after and "contact_phone" in r.after]
        assert phones and all("****" in r.after["contact_phone"] for r in phones)
        firms = [r.after for r in rows if r.entity == "firm" and r.after]
        serials = [after["qr_serial"] for after in firms if "qr_serial" in after]
        assert serials and all(s.startswith("sha256:") for s in serials)
        # the visit's entry of the sign-in mobile alone: masked
        mobiles = [after["sign_in_phone"] for after in firms if after.get("sign_in_phone")]
        assert mobiles and all("****" in m for m in mobiles)
        db = pair.booking_engine.url.render_as_string(hide_password=False)
        command = [sys.executable, "-m", "services.booking", "audit", "verify", "--db", db]
        ok = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
        anchor = tmp_path / "booking-anchor.json"
        take = [*command[:4], "anchor", "--db", db, "--out", str(anchor)]
        taken = subprocess.run(take, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert taken.returncode == 0 and "digest" in taken.stdout, taken.stderr
        keys = set(audit_anchor.read(anchor, "booking").heads)
        assert "" in keys and any(k.startswith("firm:") for k in keys)
        assert any(k.startswith("expert:") for k in keys)
        with_anchor = [*command, "--anchor", str(anchor)]
        ok = subprocess.run(with_anchor, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
        ticket = next(r for r in rows if r.entity == "ticket" and r.action == "update")
        with pair.booking_engine.begin() as conn:
            conn.execute(update(b_log).where(b_log.c.id == ticket.id).values(caller="someone-else"))
        broken = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert broken.returncode == 1
        assert f"BROKEN at entry {ticket.id}" in broken.stdout
        with pair.booking_engine.connect() as conn:
            assert not verify(conn, b_log, b_head).ok


def _booking_history(pair: Pair) -> None:
    firm = pair.register_firm(1)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(pair.order_request(token, phone="13412345678"), timeout=10)
    visit = ledger_visit(placed.order_id, "无台账")
    visit.contact_confirmed = True  # the expert met the contact: their mobile signs the firm in
    ticket = pair.booking.RecordVisit(visit, timeout=10).tickets[0]
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket.ticket_id,
            qr_token=token,
            photo=bpb.Photo(content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 32),
        ),
        timeout=10,
    )
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket.ticket_id, passed=True), timeout=10
    )


# ---------------------------------------------------------------- a chain per firm


def _two_firms(stub) -> None:  # type: ignore[no-untyped-def]
    _some_history(stub)
    upsert(stub, profile(3))
    upsert(stub, profile(3, employees=12))


def _chain(engine: Engine, key: str) -> list:  # type: ignore[type-arg]
    return [r for r in _entries(engine) if r.chain == key]


def test_each_firm_has_its_own_chain_and_head(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    rows = _entries(db_engine)
    assert {r.chain for r in rows} == {uscc(1), uscc(3)}
    assert all(r.chain == r.entity_id for r in rows if r.entity == "firm")
    for key in (uscc(1), uscc(3)):
        chain = _chain(db_engine, key)
        assert chain[0].prev_hash == "0" * 64  # every chain starts at the genesis
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
        with db_engine.connect() as conn:
            head = conn.execute(
                select(chains_of(audit_log)).where(chains_of(audit_log).c.chain == key)
            ).one()
        assert (head.last_id, head.last_hash) == (chain[-1].id, chain[-1].hash)
    assert _report(db_engine).ok


def test_a_tampered_row_on_one_firms_chain_is_named(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    target = _chain(db_engine, uscc(3))[-1]
    with db_engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == target.id).values(caller="x"))
    report = _report(db_engine)
    assert (report.ok, report.broken_at) == (False, target.id) and "edited" in report.reason


def test_a_deleted_row_in_a_firms_chain_is_caught(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    chain = _chain(db_engine, uscc(1))
    with db_engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == chain[1].id))
    report = _report(db_engine)
    assert (report.ok, report.broken_at) == (False, chain[2].id) and "removed" in report.reason


def test_a_cut_tail_and_a_removed_chain_are_caught(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    chain = _chain(db_engine, uscc(3))
    with db_engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == chain[-1].id))
    cut = _report(db_engine)
    assert not cut.ok and "end" in cut.reason and uscc(3)[:10] in cut.reason
    with db_engine.begin() as conn:  # every entry of the firm gone, its head left
        conn.execute(delete(audit_log).where(audit_log.c.chain == uscc(3)))
    gone = _report(db_engine)
    assert not gone.ok and "no entries" in gone.reason


def test_reordered_rows_are_caught(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    first, second = _chain(db_engine, uscc(1))[1:3]
    moved = (
        "at",
        "caller",
        "action",
        "entity",
        "entity_id",
        "before",
        "after",
        "prev_hash",
        "hash",
    )
    with db_engine.begin() as conn:  # swap the two entries' places in the chain
        for row, other in ((first, second), (second, first)):
            conn.execute(
                update(audit_log)
                .where(audit_log.c.id == row.id)
                .values({name: getattr(other, name) for name in moved})
            )
    report = _report(db_engine)
    assert (report.ok, report.broken_at) == (False, first.id) and "link" in report.reason


def test_a_row_moved_to_another_firms_chain_is_caught(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    _two_firms(register_stub)
    last = _chain(db_engine, uscc(1))[-1]
    with db_engine.begin() as conn:  # its hashes copied along cannot fit the other chain
        conn.execute(update(audit_log).where(audit_log.c.id == last.id).values(chain=uscc(3)))
    assert not _report(db_engine).ok


def test_entries_from_before_the_per_firm_chains_still_verify(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    old = {"caller": "c", "action": "create", "entity": "firm", "entity_id": uscc(9)}
    with db_engine.begin() as conn:  # as the one-chain code wrote them: no chain key
        append(conn, audit_log, audit_head, [{**old, "before": None, "after": {}}], lock=False)
    _two_firms(register_stub)
    rows = _entries(db_engine)
    assert rows[0].chain == "" and {r.chain for r in rows[1:]} == {uscc(1), uscc(3)}
    assert _report(db_engine).ok
    with db_engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == rows[0].id).values(caller="d"))
    assert _report(db_engine).broken_at == rows[0].id


def test_writers_of_many_firms_at_once_leave_every_chain_intact(register_stub, db_engine) -> None:  # type: ignore[no-untyped-def]
    def work(n: int) -> None:
        upsert(register_stub, profile(10 + n % 6, employees=5 + n))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(36)))
    report = _report(db_engine)
    assert report.ok and len({r.chain for r in _entries(db_engine)}) == 6


def _anchor_check(engine: Engine, anchor: audit_anchor.Anchor) -> VerifyReport | None:
    with engine.connect() as conn:
        return audit_anchor.check(conn, audit_log, anchor)


def _take_anchor(engine: Engine) -> audit_anchor.Anchor:
    with engine.connect() as conn:
        return audit_anchor.take(conn, audit_log, audit_head, "rules")


def test_an_anchor_catches_a_removed_chain_and_a_cut_tail_that_verify_cannot_see(
    register_stub, db_engine
) -> None:  # type: ignore[no-untyped-def]
    """Review 20 F5: removing a firm's whole chain with its head, or cutting a chain's tail
    and moving its head back, leaves chains that each verify; the heads written down
    before (an anchor) are no longer on their chains, and that is named."""
    _two_firms(register_stub)
    anchor = _take_anchor(db_engine)
    assert set(anchor.heads) == {uscc(1), uscc(3)} and _anchor_check(db_engine, anchor) is None
    upsert(register_stub, profile(3, employees=13))  # writes after the anchor keep it valid
    assert _report(db_engine).ok and _anchor_check(db_engine, anchor) is None
    one, three = _chain(db_engine, uscc(1)), _chain(db_engine, uscc(3))
    heads = chains_of(audit_log)
    with db_engine.begin() as conn:  # firm 1's newest entry cut, its head moved back
        conn.execute(delete(audit_log).where(audit_log.c.id == one[-1].id))
        conn.execute(
            update(heads)
            .where(heads.c.chain == uscc(1))
            .values(last_id=one[-2].id, last_hash=one[-2].hash)
        )
    assert _report(db_engine).ok  # the gap the anchor closes
    cut = _anchor_check(db_engine, anchor)
    assert cut is not None and cut.broken_at == one[-1].id and uscc(1)[:10] in cut.reason
    with db_engine.begin() as conn:  # firm 3's whole chain and its head removed
        conn.execute(delete(audit_log).where(audit_log.c.chain == uscc(3)))
        conn.execute(delete(heads).where(heads.c.chain == uscc(3)))
    assert _report(db_engine).ok
    fresh = _take_anchor(db_engine)  # an anchor taken now sees nothing wrong …
    assert uscc(3) not in fresh.heads and _anchor_check(db_engine, fresh) is None
    gone = audit_anchor.Anchor("rules", anchor.taken_at, {uscc(3): anchor.heads[uscc(3)]})
    missing = _anchor_check(db_engine, gone)  # … the one taken before does
    assert missing is not None and missing.broken_at == anchor.heads[uscc(3)][0]
    assert missing.broken_at in {r.id for r in three[:-1]}  # its head before the last upsert


def test_cli_audit_anchor_and_verify_with_it(register_stub, db_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`audit anchor --out FILE` prints the digest to publish; `audit verify --anchor FILE
    --digest HEX` refuses an edited file or a wrong digest (exit 2) and names a removed
    chain (exit 1, BROKEN)."""
    _two_firms(register_stub)
    db = db_engine.url.render_as_string(hide_password=False)
    path = tmp_path / "anchor.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "services.rules", "audit", *args, "--db", db]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    taken = cli("anchor", "--out", str(path))
    assert taken.returncode == 0, taken.stderr
    digest = taken.stdout.split("digest ")[1].split()[0]
    assert digest == audit_anchor.read(path, "rules").digest and len(digest) == 64
    ok = cli("verify", "--anchor", str(path), "--digest", digest)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    wrong = cli("verify", "--anchor", str(path), "--digest", "0" * 64)
    assert wrong.returncode == 2 and "--digest" in wrong.stderr
    other = cli("verify", "--anchor", str(path).replace("anchor.json", "none.json"))
    assert other.returncode == 2 and "cannot read the anchor" in other.stderr
    heads = chains_of(audit_log)
    with db_engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.chain == uscc(3)))
        conn.execute(delete(heads).where(heads.c.chain == uscc(3)))
    assert cli("verify").returncode == 0  # without the anchor the removal is invisible
    broken = cli("verify", "--anchor", str(path), "--digest", digest)
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and uscc(3)[:10] in broken.stdout
    edited = path.read_text().replace(uscc(3), uscc(4))
    path.write_text(edited)
    assert cli("verify", "--anchor", str(path)).returncode == 2  # the file's own digest


def test_verify_and_anchor_on_a_live_database_read_one_snapshot(
    register_stub, db_engine, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Review 22 F2: `audit verify` read the heads, then the rows, each statement its own
    snapshot on PostgreSQL: an entry committed between them lay past its chain's head and
    was reported as a cut tail (a false alarm from the daily anchor's verify). Verify and
    anchor now read one snapshot, which takes no write lock: the writer goes on."""
    for n in range(1, 6):
        upsert(register_stub, profile(n))
    stop, written = threading.Event(), []

    def write() -> None:
        while not stop.is_set():
            i = len(written) + 1
            upsert(register_stub, profile(1 + i % 5, employees=10 + i % 50))
            written.append(i)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        codes = []
        for _ in range(300):
            with read_snapshot(db_engine) as conn:
                anchor = audit_anchor.take(conn, audit_log, audit_head, "rules")
            check = functools.partial(audit_anchor.check, log=audit_log, anchor=anchor)
            codes.append(verify_command(db_engine, audit_log, audit_head, check))
    finally:
        stop.set()
        writer.join()
    assert codes == [0] * 300, capsys.readouterr().out[-300:]
    assert len(written) > 3  # the writer was not held up by the reads
