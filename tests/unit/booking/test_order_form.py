"""The order form (点单): every rule of docs/booking.md, each violation named by its form field."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.orders import PHONE, OrderRequest, mask_phone, validate_order
from services.booking.domain.slots import Slot
from services.common.errors import ValidationError

TODAY = date(2026, 6, 1)
MENU = frozenset(
    {
        "fire_safety",
        "electrical_safety",
        "dust_explosion",
        "confined_space",
        "hazardous_chemicals",
        "gas_safety",
        "ammonia_refrigeration",
        "warehouse_safety",
        "first_lesson",
        "standardization_coaching",
    }
)
FIELDS = {"item_codes", "preferred_slots", "contact_name", "contact_phone", "note"}


def slot(days_ahead: int, half: str = "AM") -> str:
    return f"{(TODAY + timedelta(days=days_ahead)).isoformat()} {half}"


def form(**change: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "items": ["fire_safety"],
        "slots": [slot(1), slot(2, "PM")],
        "name": "张三",
        "phone": "13812345678",
        "note": "",
    }
    data.update(change)
    return data


def submit(data: dict[str, Any], menu: frozenset[str] = MENU) -> OrderRequest:
    return validate_order(
        data["items"], data["slots"], data["name"], data["phone"], data["note"], menu, TODAY
    )


def violations(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        submit(data)
    assert info.value.code == "invalid_argument"
    out: dict[str, list[str]] = {}
    for v in info.value.violations:
        out.setdefault(v.field, []).append(v.description)
    return out


def form_fields(bad: dict[str, list[str]]) -> set[str]:
    """The form fields the violations belong to: `preferred_slots[1]` (one bad item,
    named by its index as sent) is shown beside `preferred_slots` (review 72)."""
    return {re.sub(r"\[\d+\]$", "", field) for field in bad}


def test_clean_form_is_accepted_and_normalised() -> None:
    req = submit(
        form(
            items=[" gas_safety ", "fire_safety", "gas_safety"],
            slots=[slot(3, "PM"), " " + slot(1) + " ", slot(3, "PM")],
            name="  张三 ",
            phone=" 138-1234 5678 ",
            note="  二楼仓库  ",
        )
    )
    assert req.item_codes == ("gas_safety", "fire_safety")  # order kept, duplicates gone
    assert req.preferred_slots == (
        Slot(TODAY + timedelta(days=1), "AM"),
        Slot(TODAY + timedelta(days=3), "PM"),
    )
    assert req.contact_name == "张三"
    assert req.contact_phone == "13812345678"
    assert req.note == "二楼仓库"


def test_every_menu_item_is_orderable_at_once() -> None:
    assert submit(form(items=sorted(MENU))).item_codes == tuple(sorted(MENU))


# ---- items ------------------------------------------------------------------------------


@pytest.mark.parametrize("items", [[], [""], ["  ", "\t"]])
def test_items_required(items: list[str]) -> None:
    assert form_fields(violations(form(items=items))) == {"item_codes"}


def test_unknown_item_codes_are_named() -> None:
    bad = violations(form(items=["fire_safety", "mining", "Fire_Safety"]))
    assert set(bad) == {"item_codes[1]", "item_codes[2]"}  # each by its index as sent
    assert "mining" in bad["item_codes[1]"][0]
    assert "Fire_Safety" in bad["item_codes[2]"][0]
    assert "fire_safety" not in bad["item_codes[1]"][0] + bad["item_codes[2]"][0]


def test_at_most_ten_items() -> None:
    menu = MENU | {f"extra_{i}" for i in range(5)}
    eleven = sorted(menu)[:11]
    with pytest.raises(ValidationError) as info:
        submit(form(items=eleven), menu)
    assert {v.field for v in info.value.violations} == {"item_codes"}
    assert len(submit(form(items=eleven[:10]), menu).item_codes) == 10


def test_duplicates_collapse_before_the_item_limit() -> None:
    items = [*sorted(MENU), "fire_safety", "gas_safety"]  # 12 entries, 10 distinct
    assert len(submit(form(items=items)).item_codes) == 10


# ---- preferred slots --------------------------------------------------------------------


@pytest.mark.parametrize(
    "slots",
    [
        [],
        [slot(1)],
        [slot(1), slot(1)],  # duplicates count once
        [slot(1), " " + slot(1) + " "],
        [slot(1), "", "  "],
    ],
)
def test_at_least_two_slots(slots: list[str]) -> None:
    assert set(violations(form(slots=slots))) == {"preferred_slots"}


@pytest.mark.parametrize(
    "bad_slot",
    [
        slot(0),  # today is excluded
        slot(0, "PM"),
        slot(-1),
        slot(15),  # beyond the 14-day window
        slot(400),
    ],
)
def test_slots_outside_the_window(bad_slot: str) -> None:
    bad = violations(form(slots=[slot(1), bad_slot, slot(2)]))
    assert set(bad) == {"preferred_slots[1]"}
    assert bad_slot in bad["preferred_slots[1]"][0]


def test_window_edges_tomorrow_and_day_fourteen_included() -> None:
    req = submit(form(slots=[slot(14, "PM"), slot(1)]))
    assert [str(s) for s in req.preferred_slots] == [slot(1), slot(14, "PM")]


def test_every_half_day_in_the_window_is_accepted() -> None:
    every = [slot(d, h) for d in range(1, 15) for h in ("AM", "PM")]
    assert len(submit(form(slots=every)).preferred_slots) == 28


@pytest.mark.parametrize(
    "bad_slot",
    [
        "2026-06-02",
        "2026-06-02 am",
        "2026/06/02 AM",
        "2026-06-31 AM",
        "tomorrow",
        "2026-06-02 NOON",
    ],
)
def test_bad_slot_format(bad_slot: str) -> None:
    bad = violations(form(slots=[slot(1), bad_slot, slot(2)]))
    assert set(bad) == {"preferred_slots[1]"}
    assert bad_slot in bad["preferred_slots[1]"][0]


# ---- contact ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "x" * 51, "张" * 51])
def test_bad_contact_name(name: str) -> None:
    assert set(violations(form(name=name))) == {"contact_name"}


@pytest.mark.parametrize("name", ["李", "x" * 50, "张" * 50, " " + "张" * 50 + " "])
def test_contact_name_limits(name: str) -> None:
    assert submit(form(name=name)).contact_name == name.strip()


@pytest.mark.parametrize(
    ("phone", "clean"),
    [
        ("13012345678", "13012345678"),
        ("19912345678", "19912345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        (" 13812345678 ", "13812345678"),
    ],
)
def test_good_phones(phone: str, clean: str) -> None:
    assert submit(form(phone=phone)).contact_phone == clean


@pytest.mark.parametrize(
    "phone",
    [
        "",
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "12812345678",  # second digit 2
        "11812345678",
        "23812345678",  # does not start with 1
        "+8613812345678",  # country code is not a mainland mobile as typed
        "1381234567a",
        "0571-88888888",  # a landline
        "138.1234.5678",
    ],
)
def test_bad_phones(phone: str) -> None:
    assert set(violations(form(phone=phone))) == {"contact_phone"}


@pytest.mark.parametrize("phone", ["12012345678", "11012345678", "10012345678"])
def test_the_phone_message_states_the_rule_that_refused_the_number(phone: str) -> None:
    """Review 52 M1: the message said "以1开头" of numbers that start with 1 and were
    refused all the same. Every mobile message names the prefixes PHONE takes, 13 to 19."""
    assert violations(form(phone=phone))["contact_phone"] == [messages.BAD_PHONE]
    for text in (messages.BAD_PHONE, messages.SIGN_IN_BAD_PHONE, messages.EXPERT_PHONE):
        stated = re.search(r"以(1[0-9])至(1[0-9])开头", text)
        assert stated, text
        low, high = int(stated.group(1)), int(stated.group(2))
        for prefix in range(10, 20):
            taken = PHONE.fullmatch(f"{prefix}012345678") is not None
            assert taken == (low <= prefix <= high), (text, prefix)


@pytest.mark.parametrize("phone", ["13８12345678", "13٨١٢٣٤٥٦٧٨"])
def test_non_ascii_digits_are_not_a_phone_number(phone: str) -> None:
    assert set(violations(form(phone=phone))) == {"contact_phone"}


# ---- note -------------------------------------------------------------------------------


def test_note_up_to_500() -> None:
    assert submit(form(note="注" * 500)).note == "注" * 500
    assert set(violations(form(note="注" * 501))) == {"note"}


# ---- all at once ------------------------------------------------------------------------


def test_every_violation_reported_at_once() -> None:
    bad = violations(form(items=["nope"], slots=[slot(1)], name="", phone="123", note="x" * 501))
    assert form_fields(bad) == FIELDS
    assert all(len(descriptions) == 1 for descriptions in bad.values())


@pytest.mark.parametrize(
    "change",
    [{"items": []}, {"slots": ["x", "y"]}, {"name": ""}, {"phone": "1"}, {"note": "x" * 501}],
)
def test_each_violation_field_is_a_form_field_with_a_chinese_message(
    change: dict[str, Any],
) -> None:
    bad = violations(form(**change))
    assert form_fields(bad) <= FIELDS
    for descriptions in bad.values():
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in d) for d in descriptions)


# ---- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("13812345678", "138****5678"), ("", "***"), ("1381234567", "***"), ("138123456789", "***")],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_a_long_bad_value_is_quoted_short_and_in_chinese() -> None:
    """Review hunt 10: the phone page showed '…(300 characters)' in English."""
    found = violations(form(slots=["x" * 300, slot(1)]))["preferred_slots[0]"]
    assert len(found) == 1 and "…（共300个字符）" in found[0]
    assert "characters" not in found[0] and "x" * 33 not in found[0]
