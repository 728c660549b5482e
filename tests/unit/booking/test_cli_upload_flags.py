"""`serve --visit-photo-writers`, `--visit-photo-spool-mb`: what the expert's visit photos
may take of the web process (web/uploads.py); `--upload-idle-seconds`,
`--upload-min-rate-kb`: how slowly a request body may arrive before it is cut
(web/middleware.py BodyPace); UploadLimits' defaults when not given."""

from __future__ import annotations

import pytest

from services.booking.entrypoints.cli import _parser, upload_limits
from services.booking.entrypoints.web.middleware import BodyPace
from services.booking.entrypoints.web.uploads import UploadLimits


def test_the_flags_set_the_writers_and_the_spools_room() -> None:
    args = _parser().parse_args(
        ["serve", "--visit-photo-writers", "2", "--visit-photo-spool-mb", "50"]
    )
    limits = upload_limits(args)
    assert (limits.writers, limits.spool_bytes) == (2, 50 * 1024 * 1024)
    assert limits.wait == UploadLimits().wait


def test_the_flags_set_how_slowly_a_body_may_arrive() -> None:
    args = _parser().parse_args(
        ["serve", "--upload-idle-seconds", "12.5", "--upload-min-rate-kb", "0"]
    )
    assert upload_limits(args).pace == BodyPace(idle_seconds=12.5, min_rate=0)
    args = _parser().parse_args(["serve", "--upload-min-rate-kb", "8"])
    assert upload_limits(args).pace == BodyPace(min_rate=8 * 1024)


def test_unset_they_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "BOOKING_VISIT_PHOTO_WRITERS",
        "BOOKING_VISIT_PHOTO_SPOOL_MB",
        "BOOKING_UPLOAD_IDLE_SECONDS",
        "BOOKING_UPLOAD_MIN_RATE_KB",
    ):
        monkeypatch.delenv(name, raising=False)
    assert upload_limits(_parser().parse_args(["serve"])) == UploadLimits()
    assert UploadLimits().pace == BodyPace(idle_seconds=30, min_rate=4 * 1024)


def test_a_body_s_pace() -> None:
    """The next bytes may take the idle time, less once the body's average falls behind
    the minimum rate (counted from the end of its first idle time)."""
    pace = BodyPace(idle_seconds=30, min_rate=1000)
    assert pace.wait(received=0, waited=0) == 30
    assert pace.wait(received=0, waited=20) == 10  # nothing yet: 30 s in all
    assert pace.wait(received=100_000, waited=60) == 30  # well ahead of 1000 B/s
    assert pace.wait(received=10_000, waited=35) == 5  # 10 s of bytes, 5 s past them
    assert pace.wait(received=10_000, waited=45) <= 0  # behind: cut
    assert BodyPace(idle_seconds=30, min_rate=0).wait(received=0, waited=10_000) == 30


@pytest.mark.parametrize(
    "flag",
    [
        ["--visit-photo-writers", "0"],
        ["--visit-photo-spool-mb", "1"],
        ["--upload-idle-seconds", "0"],
        ["--upload-idle-seconds", "nan"],
        ["--upload-min-rate-kb", "-1"],
    ],
)
def test_out_of_range_they_are_refused(flag: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["serve", *flag])
    assert info.value.code == 2
