"""Who asks on a firm's behalf: the credentials a firm's call or page brings with it.

A firm has two: the QR token on its poster (qr.py), which anyone holding the poster has,
and a signed-in session (sign_in.py), which only the firm's own mobile gets. A use case
that reads or changes a firm's records takes one `FirmAccess` instead of both strings;
service_layer/qr_codes.py `owner_of` resolves it against the register before any record
is looked up. An empty one is a staff caller, admitted by its scopes alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirmAccess:
    """`token`: the QR token sent ("" none); `session_firm`: the enterprise id the call's
    session signs in, as the entrypoint checked it ("" none or not valid)."""

    token: str = ""
    session_firm: str = ""

    @property
    def by_firm(self) -> bool:
        """A firm's credential came with the call (a token, a session or both): whoever
        sent it acts as that firm, not as the authority's staff."""
        return bool(self.token or self.session_firm)

    def signed_in_as(self, enterprise_id: str) -> bool:
        """The firm's own session is this firm's: what only the firm may read (its
        tickets, its orders' experts and contacts) is shown."""
        return bool(self.session_firm) and self.session_firm == enterprise_id


STAFF = FirmAccess()  # no firm credential: a caller its scopes admitted
