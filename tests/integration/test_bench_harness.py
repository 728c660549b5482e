"""bench/harness.py on tiny numbers: a real rules server process with its echo service,
client processes, the figures and the table. Structure only: no time is asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import harness
from bench.rules_server import ECHO_STREAM, ECHO_UNARY
from bench.run import summarise_spy
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.workload import profiles
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json

pytestmark = pytest.mark.timeout(120)


def test_a_server_process_measured_beside_its_echo(tmp_path: Path) -> None:
    token = harness.write_tokens(tmp_path, ["rules.evaluate"])
    address = f"127.0.0.1:{harness.free_port()}"
    argv = ["bench.rules_server", "serve", "--grpc", address, "--tokens"]
    argv += [str(tmp_path / "tokens.json"), "--db", f"sqlite:///{tmp_path}/r.db"]
    requests = tuple(
        pb.EvaluateRequest(profile=profile_from_json(p), as_of="2026-06-30").SerializeToString()
        for p in profiles(20)
    )
    auth = (("authorization", f"Bearer {token}"),)
    quick: dict[str, Any] = {"seconds": 0.3, "warmup": 0.1, "metadata": auth}
    with harness.ServerProcess(argv, address, tmp_path / "server.log") as server:
        server.start(grpc_server.SERVICE_NAME)
        assert server.rss_mb() > 10
        pair = harness.Pair("Evaluate, 2 in flight", "echo, 2 in flight", "calls/s")
        for _ in range(2):
            load = harness.Load(address, ECHO_UNARY, requests, in_flight=2, clients=2, **quick)
            pair.baseline.append(harness.measure(load, server))
            load = harness.Load(address, "/rules.v1.RulesService/Evaluate", requests, 2, **quick)
            pair.project.append(harness.measure(load, server))
        stream = harness.measure(
            harness.Load(address, ECHO_STREAM, requests, in_flight=1, stream=True, **quick)
        )
    assert server.stop() is not None  # stopped, with an exit code
    for measured in pair.project + pair.baseline:
        assert measured.calls > 0 and measured.rate > 0
        assert len(measured.latencies) == measured.calls
        assert 0 < measured.percentile(50) <= measured.percentile(99)
        assert measured.client_cpu > 0 and measured.client_cpu_max <= measured.client_cpu + 1e-9
    assert stream.calls > 0 and not stream.latencies
    assert pair.ratio() > 0
    table = harness.pair_table([pair]).splitlines()
    assert len(table) == 3 and table[2].startswith("| Evaluate, 2 in flight | ")
    assert "Evaluate" in (tmp_path / "server.log").read_text()


def test_percentiles_and_the_profile_summary(tmp_path: Path) -> None:
    assert harness.percentile([], 50) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert harness.percentile(values, 50) == 50.0
    assert harness.percentile(values, 99) == 99.0
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "run (grpc/_server.py:1);evaluate (services/rules/x.py:2) 3\n"
        "run (grpc/_server.py:1);idle (threading.py:9) 1\n"
    )
    assert summarise_spy(raw) == [
        (1.0, "run (grpc/_server.py)"),
        (0.75, "evaluate (services/rules/x.py)"),
    ]


def test_the_whole_table_says_what_the_machine_spent_an_item() -> None:
    """`whole=True`: the database's cores, and client + server + database CPU per item
    with the rate the machine's cores bound it to, beside the baseline's."""
    import psutil

    project = harness.Measured(100, 1.0, [0.01] * 100, 0.1, 0.1, server_cpu=0.5, db_cpu=0.2)
    baseline = harness.Measured(200, 1.0, [0.01] * 200, 0.1, 0.1, server_cpu=0.3)
    assert project.all_cpu_per_item == pytest.approx(8000)  # (0.1 + 0.5 + 0.2) / 100
    pair = harness.Pair("x", "y", "calls/s", [project], [baseline])
    plain = harness.pair_table([pair]).splitlines()
    lines = harness.pair_table([pair], whole=True).splitlines()
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert len(cells) == len(plain[2].strip("|").split("|")) + 2
    bound = (psutil.cpu_count() or 1) * 1e6 / 8000
    assert cells[-2:] == ["0.20", f"8,000: ≤ {bound:,.0f}/s (2,000)"]


def test_the_database_cpu_is_read_off_the_postgresql_processes() -> None:
    """Backends that ended count too (a pool closes connections): a connection that
    spends CPU and closes before the second reading still adds its CPU."""
    import time

    import psutil
    from sqlalchemy import create_engine, text

    running = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    before = harness.database_cpu_seconds()
    if not running:
        assert before == 0.0
        return
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with engine.connect() as conn:  # about a quarter of a second of a backend's CPU
        conn.execute(text("SELECT count(*) FROM generate_series(1, 5000000)")).scalar()
    engine.dispose()  # the backend ends
    for _ in range(50):  # the postmaster reaps it (its CPU moves to its children's times)
        if harness.database_cpu_seconds() - before >= 0.1:
            break
        time.sleep(0.1)
    assert harness.database_cpu_seconds() - before >= 0.1


def test_a_loaded_postgresql_database_is_analyzed_and_sqlite_left_alone(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from bench.register import analyzed, database

    for kind in ("postgresql", "sqlite"):
        with database(kind, tmp_path) as url:
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (n integer)"))
                conn.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
            analyzed(url)
            with engine.connect() as conn:
                if kind == "postgresql":
                    query = "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 't'"
                    assert conn.execute(text(query)).scalar() is not None
                else:
                    query = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
                    assert conn.execute(text(query)).scalar() == 0
            engine.dispose()


@pytest.mark.timeout(600)
def test_report_event_stream_is_measured_beside_the_bare_insert_stream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`bench.register_rpcs --quick` with the stream rows only: a window of 4 unanswered
    events on one stream, beside the insert stream through the same client; every reply
    timed (the harness raises should any reply be an item's error)."""
    from bench import register_rpcs

    argv = ["--quick", "--db", "sqlite", "--methods", "ReportEventStream", "--streams", "1x4"]
    assert register_rpcs.main(argv) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ReportEvent")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == "ReportEventStream, 4 in flight: 1 stream × window 4 (sqlite)"
    assert cells[3] == "bare insert stream"
    assert float(cells[1].replace(",", "")) > 0 and float(cells[4].replace(",", "")) > 0
    assert cells[6] != "–" and float(cells[6]) > 0  # p50 of the stream's replies


def test_a_report_event_groups_postgresql_cost_is_split_by_phase(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`bench.report_event_sql` on a small register: every phase named, with a figure."""
    import psutil

    from bench import report_event_sql

    if not any(p.info["name"] == "postgres" for p in psutil.process_iter(["name"])):
        pytest.skip("needs this machine's PostgreSQL processes (/proc)")
    assert report_event_sql.main(["--firms", "40", "--events", "64", "--group", "16"]) == 0
    out = capsys.readouterr().out
    assert "64 events in groups of 16" in out
    for phase in ("the write pipeline", "the group's reads", "before sealing", "commit"):
        assert phase in out


@pytest.mark.timeout(600)
def test_the_booking_rounds_are_measured_on_analyzed_bookings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench.booking --quick` on PostgreSQL: the warm-up's orders (two per expert) are
    booked before the round, and the database is vacuumed and analyzed with them in,
    before the round (stop 27: statistics of the empty booking tables, which this machine's
    PostgreSQL without autovacuum never refreshed, gave each connection a cached plan of
    dispatch's query that read every booking once for each expert)."""
    from sqlalchemy import create_engine, text

    from bench import booking

    seen: list[int] = []
    analyzed = booking.analyzed
    vacuumed = "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'assignments'"

    def counting(url: str, **how: bool) -> None:
        engine = create_engine(url)
        with engine.connect() as conn:
            seen.append(conn.execute(text("SELECT count(*) FROM assignments")).scalar_one())
        analyzed(url, **how)
        with engine.connect() as conn:
            assert conn.execute(text(vacuumed)).scalar() is not None
        engine.dispose()

    monkeypatch.setattr(booking, "analyzed", counting)
    assert booking.main(["--quick", "--db", "postgresql", "--seconds", "0.5"]) == 0
    assert seen == [2 * 40]  # one round, after the warm-up's orders, each booked
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| CreateOrder")]
    assert len(rows) == 1 and float(rows[0].split("|")[2].replace(",", "")) > 0


@pytest.mark.timeout(600)
def test_the_register_rounds_are_measured_on_analyzed_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench.register_rpcs --quick` on PostgreSQL: the warm-up's ReportEvents (two per
    firm) are recorded before the round, and the database is vacuumed and analyzed with
    them in, before the round (stop 27: one ANALYZE at set-up, before any event and with
    every change of the feed unpositioned, which this machine's PostgreSQL without
    autovacuum never refreshed, gave each connection cached plans that got dearer with
    every round: the feed's look for an unpositioned change scanned every change)."""
    from sqlalchemy import create_engine, text

    from bench import register_rpcs

    seen: list[tuple[int, bool]] = []
    analyzed = register_rpcs.analyzed
    vacuumed = "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'events'"

    def counting(url: str, **how: bool) -> None:
        engine = create_engine(url)
        with engine.connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        analyzed(url, **how)
        with engine.connect() as conn:
            seen.append((events, conn.execute(text(vacuumed)).scalar() is not None))
        engine.dispose()

    monkeypatch.setattr(register_rpcs, "analyzed", counting)
    argv = ["--quick", "--db", "postgresql", "--seconds", "0.5", "--methods", "ReportEvent"]
    assert register_rpcs.main([*argv, "--in-flight", "8"]) == 0
    # set-up's ANALYZE, then the round's VACUUM ANALYZE after the warm-up's events
    assert seen == [(0, False), (2 * 300, True)]
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ReportEvent")]
    assert len(rows) == 1 and float(rows[0].split("|")[2].replace(",", "")) > 0


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_the_bare_insert_table_is_made_once_by_processes_starting_together(
    kind: str, tmp_path: Path
) -> None:
    """`serve --processes N` under bench/insert_server.py: every child makes the
    bench-only table as it builds its handler, all at once. Eight makers released together
    (each on its own engine, as each child has) all succeed, and the table is made; on
    PostgreSQL two CREATE TABLEs at once used to collide in its catalog and fail a child."""
    import threading

    from sqlalchemy import inspect

    from bench.insert_server import BENCH_ROWS, _create_rows_table
    from bench.register import database
    from services.common.db import make_engine

    with database(kind, tmp_path) as url:
        engines = [make_engine(url) for _ in range(8)]
        start = threading.Barrier(len(engines))
        failures: list[BaseException] = []

        def make(engine: Any) -> None:
            start.wait()
            try:
                _create_rows_table(engine)
            except BaseException as exc:  # reported below, with the others
                failures.append(exc)

        for _ in range(5):  # a race: several starts, each on a database without the table
            BENCH_ROWS.drop(engines[0], checkfirst=True)
            threads = [threading.Thread(target=make, args=(e,)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            assert inspect(engines[0]).has_table("bench_rows")
        for engine in engines:
            engine.dispose()
