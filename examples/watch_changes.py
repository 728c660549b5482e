"""Follow the rules service's change feed over gRPC, resuming from a saved cursor.

    python examples/watch_changes.py HOST:PORT TOKEN [REGION]

Prints one JSON line per change and keeps the last cursor in ./feed.cursor, so a restart
(or a day away) continues exactly where it stopped. De-duplicate by change_id if you
also store changes elsewhere.
"""

import json
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc

address, token, region = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
saved = Path("feed.cursor")
cursor = saved.read_text().strip() if saved.exists() else ""
with grpc.insecure_channel(address) as channel:
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    request = pb.WatchChangesRequest(after_cursor=cursor, region=region)
    for change in stub.WatchChanges(request, metadata=[("authorization", f"Bearer {token}")]):
        print(json.dumps(json_format.MessageToDict(change), ensure_ascii=False), flush=True)
        saved.write_text(change.cursor)  # after handling it: at-least-once, in order
