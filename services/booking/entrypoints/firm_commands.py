"""Staff commands for the firm's own page and posters (`python -m services.booking …`):

    sign-in-phone --enterprise ID (--phone MOBILE | --clear)   set the firm's sign-in mobile
    posters --region 稠城街道 --out DIR [--firm ID …]           printable posters (SVG + PDF)

`posters` prints one per firm the rules register lists in each region (a 镇街 or a county,
by name or code), so the rules service must be reachable; when it is not, the command says
so in one line and exits 1. Both go through the same service-layer use cases as their
gRPC twins (SetSignInPhone, IssueQrCode), and every change is in the audit trail under
the caller `staff-cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from services.booking.adapters import migrate
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.orders import mask_phone
from services.booking.service_layer import posters, sign_in
from services.booking.service_layer.ports import BookingContext
from services.common.config import env_flag, public_url_arg
from services.common.context import Principal, bind, call_scope
from services.common.db import make_engine
from services.common.errors import DomainError

CALLER = Principal("staff-cli", frozenset({"booking.admin"}))


def add_commands(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    rules_guards: Callable[[argparse.ArgumentParser], None],
    context: Callable[[argparse.Namespace], BookingContext],
) -> None:
    """`common`: every command's flags; `rules_guards`: the rules client's guard flags,
    for posters only (sign-in-phone never calls the rules service)."""
    phone = sub.add_parser("sign-in-phone", help="set or clear a firm's sign-in mobile")
    common(phone)
    phone.add_argument("--enterprise", required=True, help="the firm's 18-character code")
    which = phone.add_mutually_exclusive_group(required=True)
    which.add_argument("--phone", help="a mainland mobile number")
    which.add_argument("--clear", action="store_true", help="remove the sign-in mobile")
    phone.set_defaults(run=lambda args: cmd_sign_in_phone(args, context(args)))

    out = sub.add_parser("posters", help="one printable poster (SVG and PDF) per firm")
    common(out)
    rules_guards(out)
    out.add_argument(
        "--region", action="append", default=[], help="a 镇街 or a county (repeatable)"
    )
    out.add_argument("--out", required=True, type=Path, help="directory for the files")
    out.add_argument(
        "--firm", action="append", default=[], help="also this firm (issued a code if it has none)"
    )
    # the same variables as `serve`: posters printed with another base URL than the
    # server's would send every phone that scans them nowhere (review 65)
    env_flag(
        out,
        "--public-url",
        "BOOKING_PUBLIC_URL",
        "http://127.0.0.1:8080",
        "base URL of the codes",
        type=public_url_arg,
    )
    env_flag(out, "--hotline", "BOOKING_HOTLINE", "12345", "hotline on the posters")
    out.set_defaults(run=lambda args: cmd_posters(args, context(args)))


def cmd_sign_in_phone(args: argparse.Namespace, ctx: BookingContext) -> int:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    with call_scope():
        bind(CALLER)
        try:
            card = sign_in.set_sign_in_phone(
                SqlUnitOfWork(engine), ctx, args.enterprise, "" if args.clear else args.phone
            )
        except DomainError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
    shown = mask_phone(card.sign_in_phone) if card.sign_in_phone else "(none)"
    print(f"{card.enterprise_id}: sign-in mobile {shown}")
    return 0


def cmd_posters(args: argparse.Namespace, ctx: BookingContext) -> int:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    for region in args.region:
        if ctx.regions is not None and not ctx.regions.area(region):
            print(f"unknown region {region[:24]!r}", file=sys.stderr)
            return 2
    with call_scope():
        bind(CALLER)
        try:
            done = posters.bulk_posters(
                lambda: SqlUnitOfWork(engine),
                ctx,
                args.region,
                args.out,
                firms=args.firm,
                progress=lambda ids: tqdm(list(ids), desc="posters", unit="firm"),
            )
        except DomainError as exc:  # rules unreachable, or it refused a firm
            print(f"posters: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1
    issued = sum(1 for p in done if p.issued)
    print(f"{len(done)} poster(s) in {args.out} ({issued} first code(s) issued)")
    return 0
