"""`python -m services.booking` → the booking service command line."""

from services.booking.entrypoints.cli import main

raise SystemExit(main())
