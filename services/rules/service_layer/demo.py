"""Register the demo city's firms (services/common/demo_city.py), as `make run` does.

Each firm goes through the same use case as UpsertEnterprise, with its registration day
as `as_of`, oldest first, so its first decision (and any white-list entry it earns)
carries that day: the white list grows over the year as the firms came in. A firm
already in the register is left as it is, so seeding again adds nothing. About 300
firms take a few seconds on SQLite (one short transaction each).
"""

from __future__ import annotations

from collections.abc import Callable

from services.common.demo_city import City
from services.rules.service_layer import register_handlers
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.unit_of_work import UnitOfWork


def seed_city(new_uow: Callable[[], UnitOfWork], ctx: RulesContext, city: City) -> int:
    """Register the city's firms not yet in the register; how many were added."""
    with new_uow() as uow:
        known = {f.enterprise_id for f in city.firms if uow.register.firm(f.enterprise_id)}
    added = 0
    for firm in sorted(city.firms, key=lambda f: (f.registered_on, f.enterprise_id)):
        if firm.enterprise_id in known:
            continue
        register_handlers.upsert_enterprise(
            new_uow(), ctx, firm.profile, firm.registered_on.isoformat()
        )
        added += 1
    return added
