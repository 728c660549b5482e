"""`python -m services.booking` → the booking service command line."""

try:
    from services.booking.entrypoints.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: as any Ctrl-C, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
