#!/usr/bin/env bash
# make bench: installs what is missing (wrk, nginx, haproxy, caddy) with
# apt-get, then runs bench/cmd/benchrun from the repository root. The raw
# results go to bench/results/<UTC date-time>/ and the rendered tables to
# BENCHMARKS.bench.md. Extra arguments go to benchrun, e.g.
#   make bench BENCHFLAGS="-rounds 1 -duration 2s"    # a quick run
#   go run ./bench/cmd/benchrun -help                  # every flag
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in wrk nginx haproxy caddy; do
	command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: missing ${missing[*]}; install them with apt-get (needs root)" >&2
	else
		apt-get update -qq
		for pkg in "${missing[@]}"; do
			if apt-cache show "$pkg" >/dev/null 2>&1; then
				echo "bench: installing $pkg"
				# Debian starts the packaged service on install; it listens
				# on :80 and is not used: the harness runs its own copies.
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
			else
				echo "bench: Debian has no package $pkg on this machine; it is not measured" >&2
			fi
		done
	fi
fi
command -v wrk >/dev/null 2>&1 || { echo "bench: wrk is required" >&2; exit 1; }

# 10,000 idle connections need more than the usual 1024 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "bench: open-file limit $(ulimit -n); load average $(cut -d' ' -f1-3 /proc/loadavg)"

out="bench/results/$(date -u +%Y-%m-%dT%H%M)"
go run ./bench/cmd/benchrun -out "$out" -md BENCHMARKS.bench.md "$@"
[ -d "$out" ] && echo "bench: raw results in $out, tables in BENCHMARKS.bench.md"
true
