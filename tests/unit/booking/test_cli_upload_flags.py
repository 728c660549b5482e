"""`serve --visit-photo-writers`, `--visit-photo-spool-mb`: what the expert's visit photos
may take of the web process (web/uploads.py), UploadLimits' defaults when not given."""

from __future__ import annotations

import pytest

from services.booking.entrypoints.cli import _parser, upload_limits
from services.booking.entrypoints.web.uploads import UploadLimits


def test_the_flags_set_the_writers_and_the_spools_room() -> None:
    args = _parser().parse_args(
        ["serve", "--visit-photo-writers", "2", "--visit-photo-spool-mb", "50"]
    )
    limits = upload_limits(args)
    assert (limits.writers, limits.spool_bytes) == (2, 50 * 1024 * 1024)
    assert limits.wait == UploadLimits().wait


def test_unset_they_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKING_VISIT_PHOTO_WRITERS", raising=False)
    monkeypatch.delenv("BOOKING_VISIT_PHOTO_SPOOL_MB", raising=False)
    assert upload_limits(_parser().parse_args(["serve"])) == UploadLimits()


@pytest.mark.parametrize("flag", [["--visit-photo-writers", "0"], ["--visit-photo-spool-mb", "1"]])
def test_out_of_range_they_are_refused(flag: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["serve", *flag])
    assert info.value.code == 2
