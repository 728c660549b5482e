"""Alembic environment for the rules register (run through adapters/migrate.py)."""

from services.common.migrations import run_env
from services.rules.adapters.orm import metadata

run_env(metadata)
