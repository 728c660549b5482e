"""The words both services use for the same things, once (shared kernel, pure).

- `Domain`: the nine high-risk domains (九大高危领域) a firm works in, an expert covers and
  a service item serves, each with its Chinese name (`label`).
- `Severity`: a hazard's or a clause's weight (重大 / 一般), with its Chinese words.
- The unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters of its
  alphabet whose last is the check character; `uscc_problem` says what is wrong with one.
- A mainland mobile number (`MOBILE`: 11 ASCII digits, 1[3-9]…): booking's phones and the
  rules register's contact mobile; `mask_mobile` is how either shows one (138****5678).
- A record's id as the services make it (`RECORD_ID`: 1 to 32 ASCII letters and digits);
  `record_id_problem` says why a text sent to look a record up can be no such id.

The dates any record may carry are in services/common/values.py (`FIRST_DAY`,
`LAST_DAY`); both services' Chinese texts for these words come from here.
"""

from __future__ import annotations

import operator
import re
from enum import StrEnum

from services.common.clock import ID_LENGTH

# A clause ref, "<standard id>:<clause id>": the rules service's grammar (its ruleset
# schema: a standard id `[A-Z][A-Z0-9]{1,15}`, a clause id of 1..32 characters with no
# whitespace and no colon, e.g. GM2023:11(3), GEN:emergency_plan). Use `fullmatch`.
CLAUSE_REF = re.compile(r"[A-Z][A-Z0-9]{1,15}:[^\s:]{1,32}")

# A mainland mobile number: 11 ASCII digits starting 13..19. Use `fullmatch`.
MOBILE = re.compile(r"1[3-9][0-9]{9}")
MOBILE_MASKED = re.compile(r"1[3-9][0-9]\*{4}[0-9]{4}")  # what `mask_mobile` shows


def mobile_problem(text: str) -> str | None:
    """Why `text` is not a mainland mobile number, or None when it is."""
    if MOBILE.fullmatch(text):
        return None
    if MOBILE_MASKED.fullmatch(text):
        return "is masked (138****5678) and masks no number on record: send the whole number"
    return "must be a mainland mobile number: 11 digits starting 13 to 19 (手机号)"


def mask_mobile(phone: str) -> str:
    """A mobile as every caller but those allowed to see it reads it: 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "***"


# A record's id as either service makes one: clock.new_id's (a letter, then hex digits),
# booking's order numbers (B, the date, six base-32 characters), the demo city's: 1 to
# ID_LENGTH (the id columns' width) ASCII letters and digits. Use `fullmatch`.
RECORD_ID = re.compile(f"[A-Za-z0-9]{{1,{ID_LENGTH}}}")


def record_id_problem(text: str) -> str | None:
    """Why `text` cannot be the id of a record the services made (so a lookup by it is a
    malformed request, not a record not found), or None when it can be one."""
    if RECORD_ID.fullmatch(text):
        return None
    if not text:
        return "is required"
    return f"must be 1 to {ID_LENGTH} ASCII letters and digits (an id the service made)"


class Domain(StrEnum):
    """The nine high-risk domains (九大高危领域)."""

    HAZARDOUS_CHEMICALS = "hazardous_chemicals"
    DUST_EXPLOSION = "dust_explosion"
    AMMONIA_REFRIGERATION = "ammonia_refrigeration"
    CONFINED_SPACE = "confined_space"
    METAL_SMELTING = "metal_smelting"
    GAS = "gas"
    FIRE_CROWDED = "fire_crowded"
    SPECIAL_EQUIPMENT = "special_equipment"
    WAREHOUSING_LOGISTICS = "warehousing_logistics"

    @property
    def label(self) -> str:
        return DOMAIN_LABELS[self]


DOMAIN_LABELS: dict[Domain, str] = {
    Domain.HAZARDOUS_CHEMICALS: "危险化学品",
    Domain.DUST_EXPLOSION: "粉尘涉爆",
    Domain.AMMONIA_REFRIGERATION: "涉氨制冷",
    Domain.CONFINED_SPACE: "有限空间",
    Domain.METAL_SMELTING: "金属冶炼",
    Domain.GAS: "燃气",
    Domain.FIRE_CROWDED: "消防（人员密集场所）",
    Domain.SPECIAL_EQUIPMENT: "特种设备",
    Domain.WAREHOUSING_LOGISTICS: "仓储物流",
}
DOMAINS = frozenset(d.value for d in Domain)


class Severity(StrEnum):
    GENERAL = "general"
    MAJOR = "major"

    @property
    def word(self) -> str:
        """重大 / 一般, as in 重大隐患 or [重大] before a clause."""
        return "重大" if self is Severity.MAJOR else "一般"

    @property
    def label(self) -> str:
        """重大隐患 / 一般隐患."""
        return f"{self.word}隐患"


# the longest firm name and region (镇街) name a register holds: what the rules service's
# profile accepts and the column both registers store them in (common/columns.py)
FIRM_NAME_LENGTH = 200
REGION_LENGTH = 100

USCC_LENGTH = 18
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


_USCC_VALUES = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_CHARS = frozenset(USCC_ALPHABET)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a code
    (ValueError for another length or a character outside the alphabet)."""
    if len(first17) != len(USCC_WEIGHTS):
        raise ValueError(f"needs {len(USCC_WEIGHTS)} characters")
    try:
        total = sum(map(operator.mul, map(_USCC_VALUES.__getitem__, first17), USCC_WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not in the GB 32100 alphabet") from None
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Why `code` is not a valid unified social credit code, or None when it is."""
    if len(code) != USCC_LENGTH:
        return "must be 18 characters (统一社会信用代码)"
    if not _USCC_CHARS.issuperset(code):
        bad = sorted({ch for ch in code if ch not in USCC_ALPHABET})
        return f"contains characters outside the GB 32100 alphabet: {''.join(bad)!r}"
    if uscc_check_char(code[:17]) != code[17]:
        return "check character does not verify (GB 32100-2015)"
    return None
