"""Alembic environment for the booking register (run through adapters/migrate.py)."""

from services.booking.adapters.orm import metadata
from services.common.migrations import run_env

run_env(metadata)
