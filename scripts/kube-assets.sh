#!/usr/bin/env bash
# kube-assets.sh builds (or reuses) the kube-apiserver and etcd binaries that
# the cluster-mode e2e tests start on loopback (internal/kubetest), and the
# kubectl that checks examples/kubernetes against them. All three come
# from the Go module proxy: no Docker, no kind, no release tarballs.
#
# usage: scripts/kube-assets.sh [DIR]
#   DIR defaults to $SLUICE_KUBE_ASSETS, else ~/.cache/sluice/kube-assets
#   (outside the repo, so later runs on the same machine reuse the binaries).
#
# Binaries already in DIR that report the wanted version are reused (0.3 s).
# A cold build takes 12-25 minutes on 2 cores and about 2.4 GB of memory.
#
# env: SLUICE_K8S_VERSION (default 1.37.2), SLUICE_ETCD_VERSION (default 3.7.3)
set -euo pipefail

dir=${1:-${SLUICE_KUBE_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube-assets}}
k8s=${SLUICE_K8S_VERSION:-1.37.2}
staging=0.${k8s#1.} # k8s 1.37.2 -> staging modules v0.37.2
etcd=${SLUICE_ETCD_VERSION:-3.7.3}

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
unset GOOS GOARCH

mkdir -p "$dir/.build"
dir=$(cd "$dir" && pwd)
log() { printf 'kube-assets: %s\n' "$*" >&2; }
# No pipes into grep -q or head here: with pipefail, the writer's SIGPIPE
# would fail the check (exit 141).
has_version() {
	[ -x "$1" ] || return 1
	local out
	out=$("$1" --version 2>/dev/null) || return 1
	[[ $out == *"$2"* ]]
}

# kube-apiserver: `go install k8s.io/kubernetes/cmd/kube-apiserver@v` is
# refused because k8s.io/kubernetes replaces every k8s.io/* staging module
# with ./staging/...; a small tools module that maps each of them to its
# published version builds the same command.
if has_version "$dir/kube-apiserver" "Kubernetes v$k8s"; then
	log "kube-apiserver v$k8s: reusing $dir/kube-apiserver"
else
	work=$dir/.build/kube-apiserver-$k8s
	mkdir -p "$work"
	cd "$work"
	if [ ! -s go.sum ]; then
		gomod=$(go mod download -json "k8s.io/kubernetes@v$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
		[ -n "$gomod" ] || { log "cannot download k8s.io/kubernetes@v$k8s"; exit 1; }
		{
			printf 'module sluice-kube-assets\n\ngo 1.26.0\n\nreplace (\n'
			grep -E '=> \./staging/' "$gomod" | awk '{print $1}' | while read -r m; do
				if grep -qE "^[[:space:]]+$m v0\.0\.0" "$gomod"; then
					printf '\t%s => %s v%s\n' "$m" "$m" "$staging"
				fi
			done
			printf ')\n'
		} >go.mod
		log "resolving k8s.io/kubernetes v$k8s"
		go get "k8s.io/kubernetes/cmd/kube-apiserver@v$k8s"
	fi
	log "building kube-apiserver v$k8s (cold: 10-25 min on 2 cores)"
	v=k8s.io/component-base/version
	go build -trimpath -o "$dir/kube-apiserver.tmp" \
		-ldflags "-s -w -X $v.gitVersion=v$k8s -X $v.gitMajor=${k8s%%.*} -X $v.gitMinor=$(echo "$k8s" | cut -d. -f2) -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z" \
		k8s.io/kubernetes/cmd/kube-apiserver
	mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
fi

# kubectl (for `kubectl apply --dry-run=server -k examples/kubernetes` in
# the e2e tests): the same tools module as kube-apiserver, one more command.
if kv=$("$dir/kubectl" version --client 2>/dev/null) && [[ $kv == *"Client Version: v$k8s"* ]]; then
	log "kubectl v$k8s: reusing $dir/kubectl"
else
	cd "$dir/.build/kube-apiserver-$k8s"
	log "resolving and building kubectl v$k8s (1-5 min)"
	go get "k8s.io/kubernetes/cmd/kubectl@v$k8s"
	v=k8s.io/component-base/version
	go build -trimpath -o "$dir/kubectl.tmp" \
		-ldflags "-s -w -X $v.gitVersion=v$k8s -X $v.gitMajor=${k8s%%.*} -X $v.gitMinor=$(echo "$k8s" | cut -d. -f2) -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z" \
		k8s.io/kubernetes/cmd/kubectl
	mv "$dir/kubectl.tmp" "$dir/kubectl"
fi

# etcd: go.etcd.io/etcd/server/v3 has its main package at the module root.
if has_version "$dir/etcd" "etcd Version: $etcd"; then
	log "etcd v$etcd: reusing $dir/etcd"
else
	work=$dir/.build/etcd-$etcd
	mkdir -p "$work"
	cd "$work"
	if [ ! -s go.sum ]; then
		printf 'module sluice-etcd-assets\n\ngo 1.26.0\n' >go.mod
		log "resolving go.etcd.io/etcd/server/v3 v$etcd"
		go get "go.etcd.io/etcd/server/v3@v$etcd"
	fi
	log "building etcd v$etcd (cold: 1-2 min)"
	go build -trimpath -ldflags "-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3
	mv "$dir/etcd.tmp" "$dir/etcd"
fi

"$dir/kube-apiserver" --version >&2
v=$("$dir/etcd" --version 2>&1) && printf '%s\n' "${v%%$'\n'*}" >&2
echo "$dir"
