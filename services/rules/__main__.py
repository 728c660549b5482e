"""`python -m services.rules` → the rules service command line."""

from services.rules.entrypoints.cli import main

raise SystemExit(main())
