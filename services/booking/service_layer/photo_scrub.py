"""Photos stored before the metadata scrub (review 64 F1, F2) put through it once: the
operator's `scrub-photos` command (docs/operations: run it once after upgrading).

Photos live in the database (`photos.content`). They are read in batches of ids in id
order (keyset paging), each batch in its own transaction, so an interrupted run keeps
what it committed and a new one (`after`: from where the last stopped, or from the
start) goes on; a photo the scrub does not change is not written (CLEAN), so a second
run writes nothing. A photo rewritten (SCRUBBED) gets its new size and SHA-256 and an
entry in the audit trail (under the caller the entrypoint binds). A photo whose
structure cannot be followed (UNREADABLE) is kept as it is and named in the report:
never deleted (it may be the only proof of a fix)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from services.booking.domain import photos
from services.booking.service_layer.unit_of_work import UnitOfWork

_log = structlog.get_logger("photo_scrub")
BATCH = 20  # photos of at most 5 MB each: at most about 100 MB held at once


@dataclass
class ScrubReport:
    scrubbed: int = 0
    clean: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (photo id, ticket id)
    last_id: str = ""  # the last photo looked at: `after` for a run that goes on from here


def scrub_photos(
    make_uow: Callable[[], UnitOfWork],
    *,
    after: str = "",
    batch: int = BATCH,
    done_batch: Callable[[ScrubReport], None] | None = None,
) -> ScrubReport:
    """Put every stored photo past `after` (id order) through the scrub, `batch` per
    transaction; `done_batch` is told the report after each commit (progress)."""
    report = ScrubReport(last_id=after)
    while True:
        uow = make_uow()
        with uow:
            ids = uow.register.photo_ids_after(report.last_id, batch)
            if not ids:
                break
            for photo_id in ids:
                photo = uow.register.photo(photo_id)
                if photo is None:  # deleted meanwhile (with its ticket's order)
                    continue
                outcome, kept = photos.rescrubbed(photo.content)
                if outcome == photos.SCRUBBED:
                    photo.content = kept
                    photo.size = len(kept)
                    photo.sha256 = hashlib.sha256(kept).hexdigest()
                    report.scrubbed += 1
                elif outcome == photos.CLEAN:
                    report.clean += 1
                else:
                    report.unreadable.append((photo.id, photo.ticket_id))
                    _log.warning(
                        "stored photo kept as it is: its structure cannot be followed",
                        photo_id=photo.id,
                        ticket_id=photo.ticket_id,
                    )
            uow.commit()
        report.last_id = ids[-1]
        if done_batch is not None:
            done_batch(report)
    return report
