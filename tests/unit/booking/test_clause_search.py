"""The visit form's clause search finds a standard by its number as people type it
(review 59 F4: "GB35181" and "GB 35181-2017" found nothing, "ledger" found a clause)."""

from __future__ import annotations

from services.booking.domain.rules_service import PickableClause, search_clauses

FIRE = PickableClause(
    "FIRE35181:6.2",
    "易燃易爆场所与人员混设",
    "生产、储存易燃易爆危险品的场所…",
    "major",
    "GB 35181-2017",
)
DUST = PickableClause(
    "GM2023:11(3)", "干式除尘未泄爆", "干式除尘系统未采取泄爆措施", "major", "应急管理部令第10号"
)
LEDGER = PickableClause("GEN:ledger", "隐患排查治理台账", "未建立隐患排查治理台账", "general")
CATALOGUE = [FIRE, DUST, LEDGER]


def refs(query: str) -> list[str]:
    return [c.clause_ref for c in search_clauses(CATALOGUE, query)]


def test_a_standard_is_found_by_its_number_as_people_type_it() -> None:
    for typed in (
        "GB35181",
        "GB 35181",
        "gb35181-2017",
        "GB 35181-2017",
        "ＧＢ３５１８１",
        "35181",
    ):
        assert refs(typed) == ["FIRE35181:6.2"], typed
    assert refs("GB 35181 6.2") == ["FIRE35181:6.2"]
    assert refs("部令第10号") == ["GM2023:11(3)"]
    assert refs("GB 50156") == []


def test_references_titles_and_texts_are_still_found() -> None:
    assert refs("") == ["FIRE35181:6.2", "GM2023:11(3)", "GEN:ledger"]
    assert refs("GM2023:11(3)") == ["GM2023:11(3)"]
    assert refs("台账") == ["GEN:ledger"]
    assert refs("泄爆 除尘") == ["GM2023:11(3)"]
    assert refs("泄爆 台账") == []
