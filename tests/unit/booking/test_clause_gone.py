"""A clause the rules service's catalogue no longer has is said to be gone on booking's
pages and answers (views.Guidance), not shown as "temporarily unavailable" as during an
outage (branch tickets-fixes)."""

from __future__ import annotations

from typing import Any

from services.booking.domain import messages
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.service_layer.views import Guidance


class Catalogue:
    """The rules port's `clause` over a fixed catalogue; `down`: rules cannot be reached."""

    def __init__(self, clauses: dict[str, tuple[str, str]], down: bool = False) -> None:
        self.clauses = clauses
        self.down = down

    def clause(self, clause_ref: str) -> tuple[str, str] | None:
        if self.down:
            raise RulesUnavailable("UNAVAILABLE")
        return self.clauses.get(clause_ref)


def test_a_clause_the_catalogue_no_longer_has_is_said_to_be_gone() -> None:
    rules: Any = Catalogue({"GEN:ledger": ("台账", "建立台账")})
    guidance = Guidance(rules, retry_after=0)
    assert guidance("GEN:ledger") == ("台账", "建立台账")
    assert guidance("GEN:training") == (messages.CLAUSE_GONE, messages.CLAUSE_GONE_GUIDANCE)
    assert guidance.texts(["GEN:training", "GEN:ledger"]) == {
        "GEN:training": messages.CLAUSE_GONE,
        "GEN:ledger": "台账",
    }


def test_while_rules_cannot_be_reached_nothing_is_said_of_the_clause() -> None:
    rules: Any = Catalogue({}, down=True)
    assert Guidance(rules, retry_after=0)("GEN:training") == ("", "")
