#!/usr/bin/env bash
# Runs the standalone example: three echo backends on loopback and the
# gateway in front of them. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
./bin/echo -addr 127.0.0.1:9001 -name web-1 & pids+=($!)
./bin/echo -addr 127.0.0.1:9002 -name web-2 & pids+=($!)
./bin/echo -addr 127.0.0.1:9003 -name api & pids+=($!)
echo "try: curl http://demo.localhost:8080/   curl http://demo.localhost:8080/api/users"
echo "     curl --cacert <(./bin/sluice ca export --config examples/standalone/sluice.yaml) https://demo.localhost:8443/"
./bin/sluice run --config examples/standalone/sluice.yaml "$@"
