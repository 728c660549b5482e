"""`python -m bench.writes`: the register and booking benchmarks together (bench/register.py,
bench/register_rpcs.py, bench/booking.py); with --write, their tables replace the section
"## The register and booking" at the end of docs/benchmarks.md (the rest is left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from bench import booking, harness, register, register_rpcs

HEADING = "## The register and booking"


def _captured(main: object, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)  # type: ignore[operator]
    sys.stdout.write(out.getvalue())
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round each")
    parser.add_argument("--firms", type=int, default=300_000, help="reevaluate's register")
    parser.add_argument("--write", type=Path, help="replace the section in this file")
    args, _others = parser.parse_known_args(argv)  # BENCH_ARGS may carry bench.run's flags
    quick = ["--quick"] if args.quick else []
    tables = [
        "### `reevaluate --all` against in-process evaluate",
        _captured(register.main, quick or ["--firms", str(args.firms)]),
        "### UpsertEnterprise, ReportEvent and ReportEventStream against a bare insert RPC",
        _captured(register_rpcs.main, quick).split("\n", 1)[1],
        "### Booking CreateOrder + dispatch against a bare insert RPC",
        _captured(booking.main, quick).split("\n", 1)[1],
    ]
    if args.write:
        text = args.write.read_text(encoding="utf-8")
        kept = text.split(HEADING, 1)[0].rstrip() + "\n\n"
        body = f"{HEADING}\n\n{harness.machine()}\n\n" + "\n\n".join(t.strip() for t in tables)
        args.write.write_text(kept + body + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
