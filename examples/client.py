"""Evaluate a firm with the rules service over gRPC, as an integrator would: a deadline,
and retries only of what is safe to retry (UNAVAILABLE; RESOURCE_EXHAUSTED after the
server's google.rpc.RetryInfo). python examples/client.py HOST:PORT TOKEN [CA.pem]
"""

import sys
import time

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc

address, token = sys.argv[1], sys.argv[2]
tls = grpc.ssl_channel_credentials(open(sys.argv[3], "rb").read()) if sys.argv[3:] else None
channel = grpc.secure_channel(address, tls) if tls else grpc.insecure_channel(address)
stub = rules_pb2_grpc.RulesServiceStub(channel)
profile = pb.EnterpriseProfile(enterprise_id="91330782MA2000001K", name="义乌市示例五金厂",
                               industry=pb.INDUSTRY_MACHINERY, region="330782001", employees=30)
for attempt in range(5):
    try:
        decision = stub.Evaluate(pb.EvaluateRequest(profile=profile), timeout=5,
                                 metadata=[("authorization", f"Bearer {token}")])
        print(pb.Status.Name(decision.status), pb.RiskLevel.Name(decision.risk_level))
        break
    except grpc.RpcError as error:
        wait = 2**attempt  # UNAVAILABLE: back off 1, 2, 4 … seconds
        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            for detail in rpc_status.from_call(error).details:  # the server says how long
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    wait = info.retry_delay.seconds
        elif error.code() != grpc.StatusCode.UNAVAILABLE:
            sys.exit(f"{error.code().name}: {error.details()}")  # fix the request, do not retry
        time.sleep(wait)
