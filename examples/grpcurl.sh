#!/bin/sh
# The rules service from the command line, two ways: grpcurl over gRPC (the server has
# reflection, so no .proto files are needed) and curl over HTTP/JSON (serve --http).
#   sh examples/grpcurl.sh GRPC_HOST:PORT HTTP_HOST:PORT TOKEN
set -eu
grpc=$1 http=$2 token=$3
request='{"profile": {"enterpriseId": "91330782MA2000001K", "name": "义乌市示例五金厂",
  "industry": "INDUSTRY_MACHINERY", "region": "330782001", "employees": 30}}'

grpcurl -plaintext -max-time 5 -H "authorization: Bearer $token" -d "$request" \
  "$grpc" rules.v1.RulesService/Evaluate

curl --fail-with-body --silent --show-error --max-time 5 \
  -H "authorization: Bearer $token" -H "content-type: application/json" -d "$request" \
  "http://$http/v1/rules/Evaluate"
echo
