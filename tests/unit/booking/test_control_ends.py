"""Control characters at either end of a text are refused, never trimmed away: str.strip()
counts U+001C–U+001F and U+0085 as whitespace, so a key or a name ending in U+001F was
trimmed and taken on every path the gRPC interceptor does not guard (the pages, the
command line). Every caller's text is trimmed with values.trim, which takes real spaces
only."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from services.booking.domain.experts import parse_expert
from services.booking.domain.orders import same_order, validate_clause_refs, validate_order
from services.booking.domain.rules_service import Question
from services.booking.service_layer.orders import admit
from services.booking.service_layer.self_check import QuestionGroup, parse_answers
from services.booking.service_layer.sign_in import set_sign_in_phone
from services.booking.service_layer.staff_accounts import NewAccount, add_user
from services.common.errors import ValidationError
from services.common.regions import load_regions, region_filter
from tests.support import ROOT, RULESETS, uscc

TODAY = date(2026, 6, 1)
REGIONS = load_regions(RULESETS / "regions.yaml")
CONTROLS = ["\x1f", "\x1c", "\x85", "\t"]


def ends(text: str) -> list[str]:
    """`text` with each control character before it and after it."""
    return [f"{c}{text}" for c in CONTROLS] + [f"{text}{c}" for c in CONTROLS]


def refused(call: Any, field: str) -> None:
    """`call` raises ValidationError naming `field` (or one of its items: `field[0]`)."""
    with pytest.raises(ValidationError) as info:
        call()
    named = {v.field.split("[")[0] for v in info.value.violations}
    assert field in named, info.value.violations


def slot(days: int) -> str:
    return f"{(TODAY + timedelta(days=days)).isoformat()} AM"


def order_form(**change: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "items": ["fire_safety"],
        "slots": [slot(1), slot(2)],
        "name": "张三",
        "phone": "13812345678",
        "note": "二车间",
    }
    return form | change


def validated(form: dict[str, Any]) -> Any:
    return validate_order(
        form["items"],
        form["slots"],
        form["name"],
        form["phone"],
        form["note"],
        frozenset({"fire_safety"}),
        TODAY,
    )


@pytest.mark.parametrize("key", ends("k1"))
def test_an_idempotency_key_with_a_control_character_at_an_end_is_refused(key: str) -> None:
    refused(lambda: admit(None, "token", key), "idempotency_key")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("contact_name", lambda v: {"name": v}),
        ("note", lambda v: {"note": v}),
        ("contact_phone", lambda v: {"phone": v}),
        ("item_codes", lambda v: {"items": [v]}),
        ("preferred_slots", lambda v: {"slots": [v, slot(3)]}),
    ],
)
def test_an_order_forms_texts_with_a_control_character_at_an_end_are_refused(
    field: str, change: Any
) -> None:
    plain = {
        "contact_name": "张三",
        "note": "二车间",
        "contact_phone": "13812345678",
        "item_codes": "fire_safety",
        "preferred_slots": slot(2),
    }[field]
    for value in ends(plain):
        refused(lambda v=value: validated(order_form(**change(v))), field)


def test_real_spaces_around_an_order_forms_texts_are_still_trimmed() -> None:
    request = validated(
        order_form(name="\u3000张三 ", note="\n二车间\u00a0\r\n", items=[" fire_safety"])
    )
    assert (request.contact_name, request.note, request.item_codes) == (
        "张三",
        "二车间",
        ("fire_safety",),
    )


def test_a_key_sent_again_with_a_control_character_is_not_the_same_order() -> None:
    from services.booking.domain.orders import Order

    stored = Order(
        "B1", "E", "firm", "稠城街道", ["fire_safety"], [slot(1), slot(2)], "张三",
        "13812345678", "二车间", "k1", "submitted", TODAY,  # type: ignore[arg-type]
    )  # fmt: skip
    assert same_order(
        stored, ["fire_safety"], [slot(1), slot(2)], " 张三", "13812345678", "二车间", []
    )
    assert not same_order(
        stored, ["fire_safety"], [slot(1), slot(2)], "张三\x1f", "13812345678", "二车间", []
    )


@pytest.mark.parametrize("ref", ends("GB15577:4.1"))
def test_a_clause_ref_with_a_control_character_at_an_end_is_refused(ref: str) -> None:
    refused(lambda: validate_clause_refs([ref]), "clause_refs")


def expert(**change: Any) -> dict[str, Any]:
    data = {
        "expert_id": "E1",
        "name": "专家甲",
        "phone": "13800000000",
        "domains": ["dust_explosion"],
        "regions": ["稠城街道"],
        "slots": [slot(1)],
    }
    return data | change


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("expert.name", lambda v: {"name": v}),
        ("expert.phone", lambda v: {"phone": v}),
        ("expert.regions", lambda v: {"regions": [v]}),
    ],
)
def test_an_experts_texts_with_a_control_character_at_an_end_are_refused(
    field: str, change: Any
) -> None:
    plain = {"expert.name": "专家甲", "expert.phone": "13800000000", "expert.regions": "稠城街道"}
    for value in ends(plain[field]):
        refused(lambda v=value: parse_expert(expert(**change(v)), REGIONS), field)


@pytest.mark.parametrize("region", ends("稠城街道") + ends("330782001"))
def test_a_region_with_a_control_character_at_an_end_names_no_region(region: str) -> None:
    assert REGIONS.township(region) is None
    refused(lambda: region_filter(REGIONS, region), "region")


def test_a_region_with_real_spaces_around_it_is_still_found() -> None:
    assert REGIONS.canonical("\u3000稠城街道 ") == "稠城街道"


@pytest.mark.parametrize("name", ends("张三"))
def test_a_staff_accounts_display_name_with_a_control_character_at_an_end_is_refused(
    name: str,
) -> None:
    new = NewAccount("inspector1", name, "inspector", "a long enough password", "稠城街道")
    refused(lambda: add_user(None, REGIONS, new), "display_name")  # type: ignore[arg-type]


@pytest.mark.parametrize("phone", ends("13812345678"))
def test_a_sign_in_mobile_with_a_control_character_at_an_end_is_refused(phone: str) -> None:
    refused(
        lambda: set_sign_in_phone(None, None, uscc(1), phone),  # type: ignore[arg-type]
        "phone",
    )


@pytest.mark.parametrize("answer", ends("yes") + ends("12"))
def test_a_self_check_answer_with_a_control_character_at_an_end_is_an_error(answer: str) -> None:
    kind = "yes_no" if answer.strip() == "yes" else "count"
    question = Question("q1", "有几个？", kind)
    groups = [QuestionGroup("标准", [(question, None)])]  # type: ignore[list-item]
    answers, errors = parse_answers(groups, {"q1": answer})
    assert answers == {} and "q1" in errors


# the code that reads what callers send: no bare str.strip() (values.trim instead)
GUARDED = ["services/booking", "services/common/regions.py", "services/rules/service_layer"]


def test_no_callers_text_is_trimmed_with_str_strip() -> None:
    bare = re.compile(r"\.strip\(\)")
    paths = [
        p
        for g in GUARDED
        for p in ((ROOT / g).rglob("*.py") if (ROOT / g).is_dir() else [ROOT / g])
    ]
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted(paths)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert found == []
