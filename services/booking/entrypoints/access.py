"""Which scopes may call which BookingService method (README "Security", docs/api.md).

`qr_ok`: callable without a bearer token (rate-limited per remote host). With the QR
token alone a firm may CreateOrder and read an order's public confirmation (GetOrder);
its private calls (GetOrder in full, ListOrders, CancelOrder, SubmitRectification) need
its session (metadata `firm-session`, from RequestSignInCode + SignIn), checked by the
handler; ListServiceItems is the public menu (printed on every poster): `public`, it
needs no token and reads none (another service's, an unknown or a malformed one is
ignored). README "Security"
names each of these; tests/unit/test_contract_docs.py keeps the two in step.
"""

from services.common.auth import MethodRule, rule

PREFIX = "/booking.v1.BookingService/"
READERS = ("booking.read", "booking.admin", "booking.inspector", "booking.expert")
BOOKING_METHODS: dict[str, MethodRule] = {
    PREFIX + name: r
    for name, r in {
        "IssueQrCode": rule("booking.admin"),
        "ListServiceItems": rule(public=True),
        "UpsertExpert": rule("booking.admin"),
        "ListExperts": rule("booking.read", "booking.admin"),
        "CreateOrder": rule("booking.admin", qr_ok=True),
        "GetOrder": rule(*READERS, qr_ok=True),
        "ListOrders": rule("booking.read", "booking.admin", qr_ok=True),
        "CancelOrder": rule("booking.admin", qr_ok=True),
        "DispatchOrder": rule("booking.admin"),
        "RecordVisit": rule("booking.expert", "booking.admin"),
        "SubmitRectification": rule("booking.admin", qr_ok=True),
        "RecheckTicket": rule("booking.inspector", "booking.expert"),
        "ListTickets": rule("booking.read", "booking.admin", "booking.inspector"),
        # who of them: authz.require_stats_reader (an expert's token is refused)
        "GetStats": rule("booking.read", "booking.admin", "booking.inspector"),
        "RequestSignInCode": rule("booking.admin", qr_ok=True),
        "SignIn": rule("booking.admin", qr_ok=True),
        "SetSignInPhone": rule("booking.admin"),
    }.items()
}

# What the firm presents to make a `qr_ok` call, where its QR token alone is not enough:
# its session (metadata `firm-session`, from SignIn), checked by the handler. The
# QR-token-only calls are the rest. docs/api.md's "who may call" column.
FIRM_CREDENTIAL = {
    PREFIX + "GetOrder": "the firm's QR token (number and status only) or its session",
    PREFIX + "ListOrders": "the firm's session",
    PREFIX + "CancelOrder": "the firm's session",
    PREFIX + "SubmitRectification": "the firm's session",
}
