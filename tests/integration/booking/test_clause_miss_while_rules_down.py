"""A clause ref missing from booking's cached catalogue while rules cannot be reached is
"cannot tell", never "no such clause": it may be a clause added since the cache was
filled as well as one a ruleset change removed. Before, the client answered None (no
such clause) once its cache was warm, so the firm's and staff's pages called a valid
new clause "no longer in the rulesets" and a visit citing it was refused as unknown
instead of UNAVAILABLE (retry). A real rules server behind a proxy the test takes down."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.booking.adapters.rules_client import RulesClient
from services.booking.domain import messages
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.service_layer.views import Guidance
from tests.booking_env import running_pair
from tests.faults import TcpProxy

KNOWN = "GM2023:4(1)"
NOT_IN_CACHE = "GM2023:4(99)"


def test_a_miss_while_rules_is_down_is_unavailable_not_gone(tmp_path: Path) -> None:
    with running_pair(tmp_path) as pair:
        proxy = TcpProxy(("127.0.0.1", pair.rules_port))
        rules = RulesClient(proxy.url_host, timeout=5)
        try:
            rules.warm_clauses()
            assert rules.clause(KNOWN) is not None
            assert rules.clause(NOT_IN_CACHE) is None  # rules up: it answered "no such"
            assert Guidance(rules)(NOT_IN_CACHE)[0] == messages.CLAUSE_GONE
            proxy.down()
            assert rules.clause(KNOWN) is not None  # cached: still shown
            with pytest.raises(RulesUnavailable):
                rules.clause(NOT_IN_CACHE)
            assert Guidance(rules)(NOT_IN_CACHE) == ("", "")  # not "gone"
        finally:
            rules.close()
            proxy.close()
