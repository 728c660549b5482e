"""Generate Python code, .pyi stubs and gRPC stubs from proto/ into services/common/_generated.

Run by `make protos`. grpc_tools emits top-level imports (`from rules.v1 import ...`);
this script rewrites them to package-absolute imports so the code lives inside our package.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT = ROOT / "services" / "common" / "_generated"
PACKAGE = "services.common._generated"
IMPORT_RE = re.compile(r"^from (rules|booking)(\.v\d+) import", re.MULTILINE)


def main() -> int:
    """Regenerate everything from scratch so a deleted proto leaves no stale module."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = _googleapis_include()
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"-I{googleapis}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for path in OUT.rglob("*.py*"):
        text = path.read_text(encoding="utf-8")
        fixed = IMPORT_RE.sub(rf"from {PACKAGE}.\1\2 import", text)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")
    for directory in [OUT, *[d for d in OUT.rglob("*") if d.is_dir()]]:
        (directory / "__init__.py").touch()
    print(f"generated {len(protos)} proto file(s) into {OUT.relative_to(ROOT)}")
    return 0


def _googleapis_include() -> Path:
    """The googleapis-common-protos package ships google/rpc/*.proto beside its modules."""
    import google.rpc.status_pb2 as status

    return Path(status.__file__).resolve().parent.parent.parent


if __name__ == "__main__":
    raise SystemExit(main())
