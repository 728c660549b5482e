"""The phone page (一图一码 扫码点单) and the supervisors' pages, over HTTP.

Server-side Jinja2 templates (autoescaped), Chinese UI, no JavaScript at all: plain links
and forms work on any phone browser.

Routes (README "The two services", docs/booking.md):
    GET  /q/{token}                         landing: firm, open tickets, orders, the menu
    GET  /q/{token}/order, POST             the order form (点单)
    GET  /q/{token}/orders/{order_id}       confirmation
    GET  /q/{token}/tickets/{ticket_id}, POST   a ticket and its proof-of-fix upload
    GET  /q/{token}/photos/{photo_id}       the firm's own proof photo
    GET  /verify/{code}                     what an inspection code stands for
    GET  /dashboard                         督单 statistics and the overdue list
    GET  /healthz                           200 ok / 503 when the database is unreachable
    /staff/…                                the staff pages (web/staff_pages.py lists them)

The package: app.py (the app and its one table of routes), middleware.py (headers, body
limits, staff credentials), limits.py (rate limits), uploads.py (the expert's visit form
read as it arrives: its photos to disk, how many visits write theirs at once), pages.py
(the routes: translate only, like the gRPC servicer), labels.py (how values look),
errors.py (errors as pages, in one place).
"""

from services.booking.entrypoints.web.app import create_web_app

__all__ = ["create_web_app"]
