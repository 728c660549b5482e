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
        validate_clause_refs([ref])
    assert info.value.violations[0].field == "clause_refs"
