"""The demo city: a seeded county register with a year of booking history (pure data).

What `make run` seeds into both services (rules: the firms; booking: the experts, orders,
visits and tickets) and what the benchmarks may reuse: the same seed and day give the
same city on every machine. It reproduces the orders of magnitude the city reports quote
(Yiwu's "已响应预约 145 次 · 服务企业 143 家 · 消除隐患 700 余处"): about 300 firms over six
streets, every one in at least one of the nine high-risk domains; 20 experts; ~145
bookings from ~143 firms over the past year; ~5 findings a visit (~700 hazards), most
rectified and verified (some late), a few open past their deadline.

Firm profiles come from services/common/workload.py (the benchmarks' generator), so ids
carry valid check characters and the industry mix is the same. Nothing here touches a
database: the services' seeders (rules entrypoints/cli.py, booking service_layer/demo.py)
write it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from services.common import workload
from services.common.instants import SHANGHAI

STREETS = ("稠城街道", "北苑街道", "稠江街道", "江东街道", "后宅街道", "佛堂镇")
DEFAULT_SEED = 20261127
SURNAMES = "陈李张王刘吴楼金朱何骆杨黄赵傅龚丁冯鲍叶"

# the menu item (rulesets/menu.yaml) a firm of each high-risk domain books
DOMAIN_ITEMS = {
    "dust_explosion": "dust_explosion",
    "confined_space": "confined_space",
    "ammonia_refrigeration": "ammonia_refrigeration",
    "hazardous_chemicals": "hazardous_chemicals",
    "metal_smelting": "standardization_coaching",
    "fire_crowded": "fire_safety",
    "warehousing_logistics": "warehouse_safety",
    "gas": "gas_safety",
    "special_equipment": "standardization_coaching",
}
INDUSTRY_NAMES = {
    "commerce_trade": "商贸",
    "small_venue": "小场所",
    "light_industry": "轻工制品厂",
    "machinery": "机械厂",
    "textile": "纺织厂",
    "building_materials": "建材厂",
    "chemicals": "化工",
    "nonferrous": "有色金属厂",
    "metallurgy": "冶金厂",
    "tobacco": "烟草仓储",
    "other": "综合企业",
}
# a domain for a firm the workload left without one, by industry
FALLBACK_DOMAIN = {
    "commerce_trade": "fire_crowded",
    "small_venue": "fire_crowded",
    "light_industry": "dust_explosion",
    "machinery": "special_equipment",
    "textile": "fire_crowded",
    "building_materials": "confined_space",
    "chemicals": "hazardous_chemicals",
    "nonferrous": "metal_smelting",
    "metallurgy": "metal_smelting",
    "tobacco": "warehousing_logistics",
    "other": "warehousing_logistics",
}
# (clause, what the expert wrote): the everyday findings, GENERAL
GENERAL_FINDINGS = (
    ("GEN:ledger", "隐患排查治理台账未建立或未及时更新"),
    ("GEN:emergency_plan", "应急预案未演练"),
    ("GEN:training", "员工安全培训记录不全"),
    ("GEN:risk_report", "未按季度报告安全风险"),
    ("GEN:extinguishers", "灭火器过期或配置不足"),
    ("SMALL:ebike", "电动自行车在室内停放充电"),
    ("SMALL:smoke", "未安装独立式感烟火灾探测报警器"),
    ("SMALL:evacuation", "疏散通道堆放杂物"),
    ("SMALL:patrol", "未落实防火巡查"),
    ("SMALL:dormitory", "车间内设置员工宿舍"),
)
# a MAJOR finding per domain (重大事故隐患判定标准 clauses)
MAJOR_FINDINGS = {
    "dust_explosion": ("GM2023:11(10)", "除尘系统积尘严重，未落实清理制度"),
    "confined_space": ("GM2023:13(1)", "有限空间未辨识建账，无警示标志"),
    "ammonia_refrigeration": ("GM2023:12(2)", "速冻装置未单独设置"),
    "hazardous_chemicals": ("CHEM2017:20", "危化品未分区分类储存"),
    "metal_smelting": ("GM2023:7(3)", "熔融金属区域存在积水"),
    "fire_crowded": ("FIRE35181:6.2", "易燃易爆场所与人员场所混设"),
    "warehousing_logistics": ("GM2023:8(7)", "故障锂电池未物理隔离"),
    "gas": ("GM2023:7(5)", "燃烧装置缺压力联锁和熄火保护"),
    "special_equipment": ("GM2023:3(2)", "特种作业人员无证上岗"),
}
# The demo accounts' own work (README "Demo logins"): demo-expert is this expert, and
# demo-inspector works STAFF_REGION, so each has something to open after `make run`.
STAFF_EXPERT_ID = "E-FIRE-01"
STAFF_REGION = "稠城街道"
MAJOR_SHARE = 0.03
FINDINGS_PER_VISIT = 5.6  # mean; the reports' ~700 eliminated of ~145 bookings
HALVES = ("AM", "PM")
DAY = timedelta(days=1)
EXPERT_DOMAINS = tuple(DOMAIN_ITEMS)


@dataclass(frozen=True)
class DemoFirm:
    profile: dict[str, Any]  # the JSON shape the rules service reads (UpsertEnterprise)
    registered_on: date  # the day it entered the register (its first decision's as_of)

    @property
    def enterprise_id(self) -> str:
        return str(self.profile["enterprise_id"])


@dataclass(frozen=True)
class DemoExpert:
    """One of the city's experts: the high-risk domains it serves (its main one first)
    and the streets it visits. Booking's seeder gives it a demo phone and every half-day
    of the next two weeks to offer."""

    expert_id: str
    name: str
    domains: tuple[str, ...]
    regions: tuple[str, ...]


@dataclass(frozen=True)
class DemoTicket:
    id: str
    clause_ref: str
    severity: str  # general | major
    description: str
    found_on: date
    due_on: date
    proof_on: date | None  # the firm sent its proof of fix
    verified_on: date | None  # the recheck passed

    def overdue_on(self, today: date) -> date | None:
        """The day booking reported it overdue (the day after its deadline, still OPEN: no
        proof by then), or None; booking's rule (domain/tickets.py `needs_overdue_report`)."""
        day = self.due_on + timedelta(days=1)
        waited = self.proof_on is None or self.proof_on >= day
        return day if waited and day <= today else None

    @property
    def late(self) -> bool:
        """Verified late: its proof came after its deadline (then it was also reported
        overdue), booking's rule (domain/tickets.py `closes_late`); a slow recheck is not
        the firm's lateness."""
        sent = self.proof_on
        return self.verified_on is not None and sent is not None and sent > self.due_on


@dataclass(frozen=True)
class DemoOrder:
    id: str
    enterprise_id: str
    name: str
    region: str
    item_codes: tuple[str, ...]
    created_at: datetime
    expert_id: str | None  # None: cancelled before dispatch
    slot_day: date
    half: str  # AM | PM
    visited: bool
    cancelled: bool
    tickets: tuple[DemoTicket, ...] = ()


@dataclass(frozen=True)
class City:
    """The whole demo city as of `today`, as `city()` builds it (the same seed and day
    give the same city): the register's firms, the experts, and a year of orders with
    their visits' tickets, oldest first."""

    seed: int
    today: date
    firms: tuple[DemoFirm, ...]
    experts: tuple[DemoExpert, ...]
    orders: tuple[DemoOrder, ...] = field(default=())
    staff_expert: DemoExpert | None = None  # the demo expert account's (its orders: staff_orders)

    def tickets(self) -> list[DemoTicket]:
        return [t for o in self.orders for t in o.tickets]

    def staff_orders(self) -> list[DemoOrder]:
        """The orders of the demo expert account (`staff_orders`), oldest first."""
        mine = self.staff_expert.expert_id if self.staff_expert else None
        return [o for o in self.orders if mine and o.expert_id == mine]


def _id(rng: random.Random, prefix: str, length: int = 16) -> str:
    return prefix + "".join(rng.choices("0123456789abcdef", k=length - len(prefix)))


def firms(rng: random.Random, count: int, today: date, seed: int) -> tuple[DemoFirm, ...]:
    """`count` firms of the six streets, each in one high-risk domain or more; a third
    registered a year ago, the others one by one over the year."""
    out: list[DemoFirm] = []
    for profile in workload.profiles(count, seed=seed, regions=STREETS, as_of=today):
        if not profile["high_risk_domains"]:
            profile["high_risk_domains"] = [FALLBACK_DOMAIN[profile["industry"]]]
        trade = INDUSTRY_NAMES[profile["industry"]]
        profile["name"] = f"义乌市{profile['region'][:2]}{trade}{len(out) + 1:03d}号"
        back = 365 if rng.random() < 0.35 else rng.randint(1, 364)
        out.append(DemoFirm(profile, today - timedelta(days=back)))
    return tuple(out)


def experts(rng: random.Random, count: int) -> tuple[DemoExpert, ...]:
    """`count` experts: every domain covered by two or more, every street by several."""
    out = []
    for n in range(count):
        main = EXPERT_DOMAINS[n % len(EXPERT_DOMAINS)]
        extra = rng.sample([d for d in EXPERT_DOMAINS if d != main], rng.randint(1, 3))
        regions = sorted({STREETS[n % len(STREETS)], rng.choice(STREETS)})
        name = f"{SURNAMES[n % len(SURNAMES)]}工"
        out.append(DemoExpert(f"E-{n + 1:02d}", name, (main, *sorted(extra)), tuple(regions)))
    return tuple(out)


def _tickets(
    rng: random.Random, firm: DemoFirm, found_on: date, today: date
) -> tuple[DemoTicket, ...]:
    count = max(0, min(12, round(rng.gauss(FINDINGS_PER_VISIT, 2.5))))
    picked = rng.sample(GENERAL_FINDINGS, min(count, len(GENERAL_FINDINGS)))
    out = []
    for n, (clause, text) in enumerate(picked):
        severity = "general"
        if n == 0 and rng.random() < MAJOR_SHARE * 5:
            clause, text = MAJOR_FINDINGS[firm.profile["high_risk_domains"][0]]
            severity = "major"
        due = found_on + timedelta(days=15 if severity == "major" else 30)
        fix = found_on + timedelta(days=max(1, round(rng.lognormvariate(2.5, 0.5))))
        proof = fix if fix <= today and rng.random() < 0.97 else None
        verified = None
        if proof is not None:
            check = proof + timedelta(days=rng.randint(1, 4))
            verified = check if check <= today else None
        out.append(
            DemoTicket(_id(rng, "T"), clause, severity, text, found_on, due, proof, verified)
        )
    return tuple(out)


def orders(
    rng: random.Random,
    city_firms: Sequence[DemoFirm],
    city_experts: Sequence[DemoExpert],
    today: date,
    count: int,
) -> tuple[DemoOrder, ...]:
    """`count` bookings over the past year, from count - 2 firms (two booked twice)."""
    booking = rng.sample(list(city_firms), count - 2)
    booking += rng.sample(booking, 2)
    out = []
    booked: set[tuple[str, date, str]] = set()
    for firm in booking:
        created_day = today - timedelta(days=rng.randint(1, 350))
        created = datetime.combine(
            created_day, time(rng.randint(8, 19), rng.randint(0, 59)), SHANGHAI
        )
        domain = firm.profile["high_risk_domains"][0]
        able = [e for e in city_experts if domain in e.domains]
        near = [e for e in able if firm.profile["region"] in e.regions] or able
        expert = rng.choice(near)
        slot_day, half = created_day + timedelta(days=rng.randint(1, 10)), rng.choice(HALVES)
        while (expert.expert_id, slot_day, half) in booked:  # one visit per half-day
            slot_day, half = (slot_day, "PM") if half == "AM" else (slot_day + DAY, "AM")
        cancelled = rng.random() < 0.01
        if not cancelled:
            booked.add((expert.expert_id, slot_day, half))
        visited = not cancelled and slot_day < today
        items = (DOMAIN_ITEMS[domain],) + (("first_lesson",) if rng.random() < 0.3 else ())
        out.append(
            DemoOrder(
                id=f"B{created_day:%y%m%d}" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=6)),
                enterprise_id=firm.enterprise_id,
                name=firm.profile["name"],
                region=firm.profile["region"],
                item_codes=items,
                created_at=created,
                expert_id=None if cancelled else expert.expert_id,
                slot_day=slot_day,
                half=half,
                visited=visited,
                cancelled=cancelled,
                tickets=_tickets(rng, firm, slot_day, today) if visited else (),
            )
        )
    return tuple(sorted(out, key=lambda o: o.created_at))


STAFF_EXPERT = DemoExpert(
    STAFF_EXPERT_ID, "陈工（消防）", ("fire_crowded",), (STAFF_REGION, "江东街道")
)
# (days ago the order was placed, days from today of its half-day, half, its findings:
# (clause, what was found, found → deadline days, found → proof days or None, proof →
# recheck days or None)); visited when its half-day has passed
STAFF_WORK = (
    (
        45,
        -40,
        "AM",
        (
            # proof sent after the deadline: waiting, overdue (the queue's 仅看已逾期)
            ("GEN:extinguishers", "灭火器过期或配置不足", 30, 35, None),
            # nothing sent: overdue (the supervisors' list; the firm may still send proof)
            ("GEN:ledger", "隐患排查治理台账未建立或未及时更新", 30, None, None),
        ),
    ),
    (
        15,
        -12,
        "PM",
        (
            # proof sent in time: waiting for the inspector, or for the expert who found it
            ("SMALL:evacuation", "疏散通道堆放杂物", 30, 10, None),
            ("GEN:training", "员工安全培训记录不全", 30, None, None),  # due in 18 days
            ("GEN:emergency_plan", "应急预案未演练", 30, 4, 2),  # passed
        ),
    ),
    (3, 0, "PM", ()),  # today: the visit to record
    (1, 1, "AM", ()),  # tomorrow
)


def staff_orders(
    rng: random.Random, city_firms: Sequence[DemoFirm], today: date, taken: set[str]
) -> tuple[DemoOrder, ...]:
    """The demo expert account's orders (STAFF_WORK), each of its own firm of the demo
    inspector's street that no other order has (fire firms first): two visited with
    tickets waiting for a recheck (one overdue), open (one overdue) and passed; one
    booked for today, one for tomorrow."""
    street = [
        f
        for f in city_firms
        if f.profile["region"] == STAFF_REGION and f.enterprise_id not in taken
    ]
    street.sort(key=lambda f: "fire_crowded" not in f.profile["high_risk_domains"])
    out = []
    for firm, (placed, slot_in, half, findings) in zip(street, STAFF_WORK, strict=False):
        created_day = today - timedelta(days=placed)
        slot_day = today + timedelta(days=slot_in)
        visited = slot_day < today
        tickets = []
        for clause, text, due_in, proof_in, check_in in findings if visited else ():
            proof = slot_day + timedelta(days=proof_in) if proof_in is not None else None
            checked = proof + timedelta(days=check_in) if proof and check_in is not None else None
            due = slot_day + timedelta(days=due_in)
            tickets.append(
                DemoTicket(_id(rng, "T"), clause, "general", text, slot_day, due, proof, checked)
            )
        out.append(
            DemoOrder(
                id=f"B{created_day:%y%m%d}" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=6)),
                enterprise_id=firm.enterprise_id,
                name=firm.profile["name"],
                region=STAFF_REGION,
                item_codes=("fire_safety",),
                created_at=datetime.combine(created_day, time(9, 30), SHANGHAI),
                expert_id=STAFF_EXPERT_ID,
                slot_day=slot_day,
                half=half,
                visited=visited,
                cancelled=False,
                tickets=tuple(tickets),
            )
        )
    return tuple(out)


def city(
    today: date,
    *,
    seed: int = DEFAULT_SEED,
    firm_count: int = 300,
    expert_count: int = 20,
    booking_count: int = 145,
) -> City:
    """The demo city as of `today`: deterministic for (seed, today): `booking_count`
    orders of its experts, then the demo expert account's few (`staff_orders`), drawn
    after them (the city's own are those it had before the demo accounts had work)."""
    rng = random.Random(seed)
    city_firms = firms(rng, firm_count, today, seed)
    city_experts = experts(rng, expert_count)
    booked = orders(rng, city_firms, city_experts, today, booking_count)
    staff = staff_orders(rng, city_firms, today, {o.enterprise_id for o in booked})
    booked = tuple(sorted(booked + staff, key=lambda o: o.created_at))
    first: dict[str, date] = {}
    for order in booked:  # in time order: a firm's first booking
        first.setdefault(order.enterprise_id, order.created_at.date())
    registered = tuple(  # a firm is in the register before it books
        replace(f, registered_on=min(f.registered_on, first[f.enterprise_id] - timedelta(days=7)))
        if f.enterprise_id in first
        else f
        for f in city_firms
    )
    return City(seed, today, registered, city_experts, booked, STAFF_EXPERT)
