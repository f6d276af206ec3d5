#!/usr/bin/env bash
# The full container test with everything it needs, on a Debian machine as
# root with no image registry (as CI's): Podman and Docker (Debian's
# docker.io and docker-compose), a base image made with debootstrap, then
# `RAFT_CONTAINER_TESTS=1 pytest -m container tests/containers`
# (tests/containers/test_compose_scenario.py: the same scenario with each
# engine). Run it from the project's virtual environment
# (pip install -e '.[test]' brings podman-compose).
#
#   bash tests/containers/full-test.sh            # set up, then test; an engine
#                                                 # that cannot be set up fails
#   bash tests/containers/full-test.sh --if-able  # CI: such an engine is skipped,
#                                                 # with its reason
#
# Environment: RAFT_CONTAINER_STATE (default /tmp/raft-trio-containers): the
# root file system tar of the base image, Podman's containers.conf, and the
# data, socket and log of the dockerd that the test starts and stops itself.
# RAFT_CONTAINER_ENGINES: "podman docker" (default) or one of them.
set -euo pipefail
cd "$(dirname "$0")/../.."

if_able=0
[ "${1:-}" = "--if-able" ] && if_able=1

unable() {
    echo "full container test: not run: $*"
    if [ "$if_able" = 1 ]; then exit 0; fi
    exit 1
}

state=${RAFT_CONTAINER_STATE:-/tmp/raft-trio-containers}
engines=${RAFT_CONTAINER_ENGINES:-podman docker}
mkdir -p "$state"
started=$SECONDS

# 1. The engines (Debian's podman 4.3, docker.io 20.10, docker-compose 1.29),
# the runtime, the network tools and debootstrap, where missing.
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
if [[ " $engines " == *" podman "* ]]; then
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
fi
if [[ " $engines " == *" docker "* ]]; then
    [ -x /usr/bin/docker ] && command -v dockerd >/dev/null || need+=(docker.io)
    command -v docker-compose >/dev/null || need+=(docker-compose)
fi
if [ "${#need[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || unable "missing ${need[*]}, and no apt-get to install them"
    # No service is started by the install (policy-rc.d): the test runs a
    # dockerd of its own, which a system one would get in the way of.
    policy_rc=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_rc=1
    fi
    ok=1
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } || ok=0
    [ "$policy_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$ok" = 1 ] || unable "apt-get install ${need[*]} failed"
fi
installed=$SECONDS

# 2. The base image's root file system: no registry is reachable, so it is
# made from Debian's packages, once. It holds the host's CA bundle and a
# pip.conf naming it: `docker build` has no mounts, and pip inside the
# build must trust what the host trusts (a TLS-inspecting proxy's CA).
rootfs_tar="$state/raft-trio-base.tar"
if [ ! -f "$rootfs_tar" ]; then
    rm -rf "$state/rootfs"
    timeout 900 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$state/rootfs" >"$state/debootstrap.log" 2>&1 ||
        unable "debootstrap failed (see $state/debootstrap.log)"
    bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    if [ -f "$bundle" ]; then
        cp "$bundle" "$state/rootfs/etc/ssl/certs/host-ca-bundle.crt"
        printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\ntimeout = 180\n' >"$state/rootfs/etc/pip.conf"
    fi
    tar -C "$state/rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$state/rootfs"
fi
based=$SECONDS

echo "full container test: set up in $((based - started)) s" \
    "(packages $((installed - started)) s, base file system $((based - installed)) s); engines: $engines"
select=()
[[ " $engines " == *" podman "* ]] || select+=(-k "not podman")
[[ " $engines " == *" docker "* ]] || select+=(-k "not docker")
require=1
[ "$if_able" = 1 ] && require=0
RAFT_CONTAINER_TESTS=1 RAFT_CONTAINER_REQUIRE=$require RAFT_CONTAINER_STATE="$state" \
    RAFT_CONTAINER_ROOTFS="$rootfs_tar" RAFT_CONTAINER_BASE=localhost/raft-trio-base \
    python -m pytest -p no:xdist -m container tests/containers -s -q -rs --durations=0 "${select[@]}"
echo "full container test: $((SECONDS - started)) s in all"
