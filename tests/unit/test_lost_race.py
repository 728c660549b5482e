"""db.lost_a_race: PostgreSQL's deadlocks and serialization failures (40P01, 40001),
wrapped by SQLAlchemy or not, and nothing else (not the rest of SQLSTATE class 40); all
of them still count as the database being unable to take the work now
(db.database_unavailable)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from services.common.db import database_unavailable, lost_a_race


def _wrapped(error: Exception) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError.instance("SELECT 1", {}, error, psycopg.Error)


@pytest.mark.parametrize(
    "error", [psycopg.errors.DeadlockDetected("x"), psycopg.errors.SerializationFailure("x")]
)
def test_deadlocks_and_serialization_failures_lost_a_race(error: Exception) -> None:
    assert lost_a_race(error) and lost_a_race(_wrapped(error))
    assert database_unavailable(_wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("x"),
        psycopg.errors.StatementCompletionUnknown("x"),  # 40003
        psycopg.errors.TransactionRollback("x"),  # 40000
        psycopg.errors.QueryCanceled("x"),
        psycopg.OperationalError("server closed the connection"),
        RuntimeError("x"),
    ],
)
def test_other_errors_did_not(error: Exception) -> None:
    assert not lost_a_race(error) and not lost_a_race(_wrapped(error))
