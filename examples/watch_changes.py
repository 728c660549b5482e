"""Keep a copy of the rules service's firms and white list current through its change feed.

    python examples/watch_changes.py HOST:PORT TOKEN [REGION]

Keeps the copy (each firm's status, each white-listed firm's valid_until) and the feed's
cursor together in ./feed.json, so a restart (or a day away) continues exactly where it
stopped; in your own system, store a change's effect and its cursor in one transaction.
Prints one JSON line per change, and on stderr what it does about errors:
- first, and whenever the feed cannot vouch for the cursor (FAILED_PRECONDITION with the
  ErrorInfo reason RESYNC_REQUIRED: the database was restored, the cursor is too old),
  reads the lists again (ListEnterprises, ListWhitelist) and follows from the cursor
  their first page names;
- UNAVAILABLE (a restart, a drain): reconnects after 1, 2, 4 ... 30 s, with jitter;
  RESOURCE_EXHAUSTED: after the server's RetryInfo; anything else stops it.
"""

import json
import os
import random
import sys
import time
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc

address, token, region = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
auth = [("authorization", f"Bearer {token}")]
saved = Path("feed.json")
K = pb.ChangeKind
C = grpc.StatusCode
AGAIN = {C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.RESOURCE_EXHAUSTED}


def log(text):
    print(f"watch_changes: {text}", file=sys.stderr, flush=True)


def save(state):  # the copy and its cursor together: written whole, then renamed
    Path("feed.json.new").write_text(json.dumps(state, ensure_ascii=False))
    os.replace("feed.json.new", saved)


def listed(call, request, field):
    """Every page of a list, and the feed cursor its first page names."""
    items, cursor = [], None
    while True:
        answer = call(request, metadata=auth, timeout=10)
        cursor = answer.feed_cursor if cursor is None else cursor
        items += getattr(answer, field)
        if not answer.next_page_token:
            return cursor, items
        request.page_token = answer.next_page_token


def resync(stub):
    """Read the lists again; follow from the cursor the first one names."""
    request = pb.ListEnterprisesRequest(region=region, page_size=500)
    cursor, firms = listed(stub.ListEnterprises, request, "enterprises")
    whitelist = pb.ListWhitelistRequest(region=region, page_size=500)
    _, entries = listed(stub.ListWhitelist, whitelist, "entries")
    log(f"read {len(firms)} firms, {len(entries)} white-list entries; following from {cursor}")
    state = {
        "cursor": cursor,
        "firms": {f.enterprise_id: pb.Status.Name(f.status) for f in firms},
        "whitelist": {e.enterprise_id: e.valid_until for e in entries},
    }
    save(state)
    return state


def apply(state, change):
    firm, kind = change.enterprise_id, change.kind
    firms, listed_ = state["firms"], state["whitelist"]
    if kind == K.CHANGE_KIND_DECISION_CHANGED:
        firms[firm] = pb.Status.Name(change.decision.status)
    elif kind in (K.CHANGE_KIND_WHITELIST_GRANTED, K.CHANGE_KIND_WHITELIST_EXTENDED):
        listed_[firm] = change.whitelist.valid_until
    elif kind in (K.CHANGE_KIND_WHITELIST_EXPIRED, K.CHANGE_KIND_WHITELIST_REVOKED):
        listed_.pop(firm, None)
    elif kind == K.CHANGE_KIND_REGION_LEFT:  # then REGION_JOINED, if you follow its new region
        firms.pop(firm, None)
        listed_.pop(firm, None)
    elif kind == K.CHANGE_KIND_REGION_JOINED:
        firms[firm] = pb.Status.Name(change.region_change.status)
        if change.region_change.whitelisted:
            listed_[firm] = change.region_change.valid_until
    state["cursor"] = change.cursor  # unknown kinds too: a new kind never stops a follower


def detail(error, kind):
    for any_detail in getattr(rpc_status.from_call(error), "details", []):
        if any_detail.Unpack(found := kind()):
            return found
    return None


state = json.loads(saved.read_text()) if saved.exists() else None
backoff = 1
with grpc.insecure_channel(address) as channel:
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    while True:
        try:
            state = state or resync(stub)
            request = pb.WatchChangesRequest(after_cursor=state["cursor"], region=region)
            for change in stub.WatchChanges(request, metadata=auth):
                apply(state, change)
                save(state)  # after handling it: at least once, in order
                print(json.dumps(json_format.MessageToDict(change), ensure_ascii=False), flush=True)
                backoff = 1
            log("the stream ended; reconnecting")  # the server ends it only with an error
        except grpc.RpcError as error:
            code, info = error.code(), detail(error, error_details_pb2.ErrorInfo)
            if info is not None and info.reason == "RESYNC_REQUIRED":
                log(f"{info.metadata['cause']}: {error.details()}")
                state = None  # read the lists again, at once
                continue
            retry = detail(error, error_details_pb2.RetryInfo)
            if code == C.RESOURCE_EXHAUSTED and retry is not None:
                wait = retry.retry_delay.seconds  # the server says when
            elif code in AGAIN:  # back off: 1, 2, 4 ... 30 s, jittered
                wait, backoff = backoff * random.uniform(0.5, 1), min(backoff * 2, 30)
            else:
                sys.exit(f"{code.name}: {error.details()}")  # the request or token needs fixing
            log(f"{code.name}: {error.details()}; trying again in {wait:.1f} s")
            time.sleep(wait)
