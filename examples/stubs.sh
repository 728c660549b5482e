#!/bin/sh
# Client stubs of your own from proto/ (Python here; other languages take the same -I
# paths). Both protos import google/protobuf/*.proto (protoc's well-known types) and
# google/rpc/status.proto (googleapis: the Python package googleapis-common-protos ships
# the .proto and its module google.rpc.status_pb2, so generate only the two protos).
#   pip install grpcio-tools googleapis-common-protos grpcio-status
#   sh examples/stubs.sh OUT_DIR     # then: from rules.v1 import rules_pb2, rules_pb2_grpc
set -eu
out=$1
mkdir -p "$out"
wellknown=$(python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
googleapis=$(python -c 'import google.rpc.status_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
python -m grpc_tools.protoc -Iproto -I"$wellknown" -I"$googleapis" \
  --python_out="$out" --grpc_python_out="$out" \
  proto/rules/v1/rules.proto proto/booking/v1/booking.proto
