"""`python -m services.rules` → the rules service command line."""

try:
    from services.rules.entrypoints.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: as any Ctrl-C, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
