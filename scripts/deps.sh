#!/usr/bin/env bash
# Installs what `make test` needs when it is missing: Debian packages with
# apt-get, Go tools with `go install`. Safe to run again; installs nothing
# that is already there.
set -euo pipefail

apt_updated=0
need_apt() { # need_apt COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: $1 is missing; install the Debian package $2 (needs root)" >&2
		exit 1
	fi
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq
		apt_updated=1
	fi
	echo "deps: installing $2 (for $1)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

command -v go >/dev/null || { echo "deps: go is missing (want Go 1.26+)" >&2; exit 1; }
need_apt git git
need_apt pebble pebble # the ACME CA of the TLS tests; ships pebble-challtestsrv
need_apt ip iproute2 # network namespaces: the cluster e2e backends
need_apt redis-server redis-server # the rate-limit tests (filters, core/internal/redisstore)
need_apt chromium chromium # the dashboard test (cmd/sluice/dashboard_e2e_test.go), headless
need_apt wrk wrk # the benchmark harness smoke test (bench/bench_test.go)
# kube-apiserver + etcd (+ kubectl) for the cluster e2e tests: built once (12-25 min
# cold), cached outside the repo (~/.cache/sluice/kube-assets), then reused.
bash "$(dirname "$0")/kube-assets.sh" >/dev/null
