"""A pre-filled order's clause refs (review of issue 11, defect 1): every clause id the
rules service issues passes the order form's check, including ids with "_"
(GEN:emergency_plan, GEN:risk_report); bad shapes and control characters do not."""

from __future__ import annotations

import pytest

from services.booking.domain.orders import validate_clause_refs
from services.common.errors import ValidationError
from services.rules.adapters.ruleset_loader import Rulebook


def test_every_catalogue_clause_ref_passes_the_order_form_check(rulebook: Rulebook) -> None:
    refs = sorted({c.ref for s in rulebook.catalogue.standards for c in s.clauses})
    assert {"GEN:emergency_plan", "GEN:risk_report", "GM2023:11(3)"} <= set(refs)
    for ref in refs:
        assert validate_clause_refs([ref]) == [ref], ref


@pytest.mark.parametrize(
    "ref",
    ["<script>", "gen:ledger", "GEN:", "GEN:a b", "GEN:a:b", "GEN:" + "x" * 33, "GEN:a\x00"],
)
def test_malformed_clause_refs_are_refused_by_field(ref: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_clause_refs(["GEN:ledger", ref])
    assert info.value.violations[0].field == "clause_refs[1]"  # by its index as sent


def test_a_firm_reads_a_national_clause_by_its_number_and_a_worded_rule_by_its_text() -> None:
    """Review 47a N1: GEN:risk_report and SMALL:smoke read as raw codes on the firm's
    pages; the templates show such a rule by its text alone."""
    from services.booking.entrypoints.web.labels import shown_ref

    assert shown_ref("GM2023:11(1)") == "GM2023:11(1)"
    assert shown_ref("FIRE35181:6.4") == "FIRE35181:6.4"
    assert shown_ref("GEN:risk_report") == ""
    assert shown_ref("SMALL:smoke") == ""
    assert shown_ref("") == ""


def test_a_worded_rule_without_its_text_reads_as_unavailable_never_as_its_code() -> None:
    from services.booking.domain import messages
    from services.booking.entrypoints.web.labels import ShownClause, shown_clause

    assert shown_clause("GM2023:11(1)", "粉尘") == ShownClause("GM2023:11(1)", "粉尘")
    assert shown_clause("GM2023:11(1)", "") == ShownClause("GM2023:11(1)", "")
    assert shown_clause("GEN:ledger", "无台账") == ShownClause("", "无台账")
    assert shown_clause("GEN:ledger", "") == ShownClause("", messages.CLAUSE_TEXT_UNAVAILABLE)


def test_a_ref_the_rules_service_did_not_know_is_not_asked_about_again_at_once() -> None:
    """An order form's refs come from its URL, and each unknown one made the rules client
    fetch the whole catalogue again; the pages' Guidance remembers it for a while."""
    from services.booking.domain import messages
    from services.booking.service_layer.views import Guidance

    asked: list[str] = []

    class Rules:
        def clause(self, ref: str) -> tuple[str, str] | None:
            asked.append(ref)
            return ("无台账", "建台账") if ref == "GEN:ledger" else None

    pages = Guidance(Rules(), retry_after=60)  # type: ignore[arg-type]
    assert pages.texts(["GEN:nope", "GEN:ledger", "GEN:nope"]) == {
        "GEN:nope": messages.CLAUSE_GONE,  # not in the catalogue: gone (tickets-fixes)
        "GEN:ledger": "无台账",
    }
    gone = (messages.CLAUSE_GONE, messages.CLAUSE_GONE_GUIDANCE)
    assert pages("GEN:nope") == gone and pages("GEN:ledger") == ("无台账", "建台账")
    assert asked == ["GEN:nope", "GEN:ledger", "GEN:ledger"]
    grpc = Guidance(Rules(), retry_after=0)  # type: ignore[arg-type]
    grpc("GEN:nope")
    grpc("GEN:nope")
    assert asked[3:] == ["GEN:nope", "GEN:nope"]  # retry_after=0: asked every time


def test_the_order_form_keeps_only_refs_the_catalogue_knows_all_while_it_cannot_be_had() -> None:
    """Review 54 D8: Guidance.known drops a ref the catalogue answers it does not know
    (also when remembered as unknown), keeps every ref while the catalogue cannot be had."""
    from services.booking.domain.rules_service import RulesUnavailable
    from services.booking.service_layer.views import Guidance

    down = False

    class Rules:
        def clause(self, ref: str) -> tuple[str, str] | None:
            if down:
                raise RulesUnavailable("UNAVAILABLE")
            return ("无台账", "建台账") if ref == "GEN:ledger" else None

    pages = Guidance(Rules(), retry_after=60)  # type: ignore[arg-type]
    assert pages.known(["GEN:nope", "GEN:ledger", ":"]) == ["GEN:ledger"]
    assert pages.known(["GEN:nope"]) == []  # remembered as unknown: not asked, dropped
    down = True
    assert Guidance(Rules()).known(["GEN:nope", "GEN:ledger"]) == ["GEN:nope", "GEN:ledger"]  # type: ignore[arg-type]
