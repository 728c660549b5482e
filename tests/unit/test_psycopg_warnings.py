"""psycopg's warning when a pipeline ends with a second error names the connection (host,
user, database) in the object it describes: its record keeps the warning and the error,
and names the object by its kind alone (review 35 F1, review 42 N1)."""

from __future__ import annotations

import logging

import psycopg
import pytest

import services.common.db  # noqa: F401 - installs the filter


class _Pipeline:
    def __repr__(self) -> str:
        return "<psycopg.Pipeline [INERROR] (host=db.internal user=booking database=prod) at 0x1>"


def test_the_terminating_warning_names_no_connection(caplog: pytest.LogCaptureFixture) -> None:
    error = psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")
    with caplog.at_level("WARNING", logger="psycopg"):
        logging.getLogger("psycopg").warning("error ignored terminating %r: %s", _Pipeline(), error)
    (record,) = [r for r in caplog.records if r.name == "psycopg"]
    message = record.getMessage()
    assert message == (
        "error ignored terminating <psycopg._Pipeline>: duplicate key value violates unique "
        "constraint"
    )
    assert "host=" not in message and "user=" not in message


def test_other_psycopg_records_pass_as_they_are(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="psycopg"):
        logging.getLogger("psycopg").warning("something else %r", _Pipeline())
    (record,) = [r for r in caplog.records if r.name == "psycopg"]
    assert "host=db.internal" in record.getMessage()


def test_the_exiting_warning_too_and_odd_arguments_pass(caplog: pytest.LogCaptureFixture) -> None:
    """psycopg's other message that describes a pipeline; and the same text without the
    arguments psycopg gives passes untouched instead of raising from the call that logs
    (review 43 F1)."""
    log = logging.getLogger("psycopg")
    with caplog.at_level("WARNING", logger="psycopg"):
        log.warning("error ignored exiting %r: %s", _Pipeline(), "boom")
        log.warning("error ignored terminating %r: %s")
    exiting, bare = [r for r in caplog.records if r.name == "psycopg"]
    assert exiting.getMessage() == "error ignored exiting <psycopg._Pipeline>: boom"
    assert bare.getMessage() == "error ignored terminating %r: %s"


def test_psycopg_still_logs_these_messages() -> None:
    """The filter matches psycopg's own text: were it reworded by an upgrade, the filter
    would pass its warnings untouched (review 43 N2)."""
    import inspect

    from psycopg import _copy, _pipeline, _pipeline_base

    assert "error ignored terminating %r: %s" in inspect.getsource(_pipeline)
    assert "error ignored terminating %r: %s" in inspect.getsource(_copy)
    assert "error ignored exiting %r: %s" in inspect.getsource(_pipeline_base)
