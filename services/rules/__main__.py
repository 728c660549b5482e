"""`python -m services.rules` → the rules service command line."""

try:
    from services.common.server import exit_process
    from services.rules.entrypoints.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: as any Ctrl-C, no traceback
    raise SystemExit(130) from None

exit_process(main())  # os._exit when a stuck call's thread still runs
