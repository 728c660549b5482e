"""Two `serve` processes of the rules service on one PostgreSQL database, as two replicas
behind a load balancer: racing CheckInspection calls spread over both processes still
allow exactly as many visits as the cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import Proc, serve_rules
from tests.faults import pg_database
from tests.integration.conftest import PG_ADMIN_URL
from tests.support import profile, uscc

TOKEN = "replica-writer-0123456789a"
RACERS = 12


def _serve(tmp_path: Path, url: str) -> Proc:
    return serve_rules(url, tmp_path / "tokens.json")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of this test's own on the machine's PostgreSQL, dropped afterwards."""
    with pg_database(PG_ADMIN_URL, "replicas") as url:
        yield url


def test_the_last_slot_raced_over_two_processes_goes_once(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "tokens.json").write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "token": TOKEN,
                        "caller": "racer",
                        "scopes": ["rules.write", "rules.read", "inspection.check"],
                    }
                ]
            }
        )
    )
    auth = (("authorization", f"Bearer {TOKEN}"),)
    first = _serve(tmp_path, pg_url)
    second = _serve(tmp_path, pg_url)
    channels = [grpc.insecure_channel(f"127.0.0.1:{p.ready['port']}") for p in (first, second)]
    try:
        stubs = [rules_pb2_grpc.RulesServiceStub(c) for c in channels]
        firm = profile(1, specialized_sme=False, standardization_grade=1)  # cap 1 a year
        stubs[0].UpsertEnterprise(
            rpb.UpsertEnterpriseRequest(profile=profile_from_json(firm)), metadata=auth, timeout=30
        )
        year = date.today().year + 1  # every planned day still to come, whatever today is
        days = [date(year, 1, 5) + timedelta(days=20 * i) for i in range(RACERS)]

        def check(i: int) -> rpb.InspectionVerdict:
            return stubs[i % 2].CheckInspection(
                rpb.CheckInspectionRequest(
                    enterprise_id=uscc(1),
                    authority=f"执法主体{i}",
                    kind=rpb.INSPECTION_KIND_ROUTINE,
                    planned_on=days[i].isoformat(),
                ),
                metadata=auth,
                timeout=60,
            )

        with ThreadPoolExecutor(RACERS) as pool:
            verdicts = list(pool.map(check, range(RACERS)))
    finally:
        for channel in channels:
            channel.close()
        assert (first.stop(), second.stop()) == (0, 0)
    assert sum(v.allowed for v in verdicts) == 1
    assert {v.reason_code for v in verdicts if not v.allowed} == {"yearly_cap"}
