"""`python -m services.booking` → the booking service command line."""

try:
    from services.booking.entrypoints.cli import main
    from services.common.server import exit_process
except KeyboardInterrupt:  # Ctrl-C while the modules load: as any Ctrl-C, no traceback
    raise SystemExit(130) from None

exit_process(main())  # os._exit when a stuck call's thread still runs
