"""Which scopes may call which BookingService method (api.md, Auth).

`qr_ok`: the firm may call it with its QR token alone (no bearer token); the handler
then admits only that firm's own order or ticket.
"""

from services.common.auth import MethodRule, rule

PREFIX = "/booking.v1.BookingService/"
READERS = ("booking.read", "booking.admin", "booking.inspector", "booking.expert")
BOOKING_METHODS: dict[str, MethodRule] = {
    PREFIX + name: r
    for name, r in {
        "IssueQrCode": rule("booking.admin"),
        "ListServiceItems": rule(*READERS, qr_ok=True),
        "UpsertExpert": rule("booking.admin"),
        "ListExperts": rule("booking.read", "booking.admin"),
        "CreateOrder": rule("booking.admin", qr_ok=True),
        "GetOrder": rule(*READERS, qr_ok=True),
        "ListOrders": rule("booking.read", "booking.admin"),
        "CancelOrder": rule("booking.admin", qr_ok=True),
        "DispatchOrder": rule("booking.admin"),
        "RecordVisit": rule("booking.expert", "booking.admin"),
        "SubmitRectification": rule("booking.admin", qr_ok=True),
        "RecheckTicket": rule("booking.inspector", "booking.expert"),
        "ListTickets": rule("booking.read", "booking.admin", "booking.inspector"),
        "GetStats": rule("booking.read", "booking.admin"),
    }.items()
}
