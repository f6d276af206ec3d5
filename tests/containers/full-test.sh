#!/usr/bin/env bash
# The full container test with everything it needs, on a Debian machine as
# root with no image registry (as CI's): podman, a base image made with
# debootstrap, then `RAFT_CONTAINER_TESTS=1 pytest -m container tests/containers`
# (tests/containers/test_podman_compose.py: build, podman-compose up, pause
# and unpause of the leader, --scale node=5). Run it from the project's
# virtual environment (pip install -e '.[test]' brings podman-compose).
#
#   bash tests/containers/full-test.sh            # set up, then test
#   bash tests/containers/full-test.sh --if-able  # CI: skip (exit 0) when
#                                                 # podman cannot be set up
#
# Environment: RAFT_CONTAINER_BASE (an image with python3 and its venv
# module; default: localhost/debian-python, made here with debootstrap
# when missing). Podman's settings go in a file of its own under
# $RAFT_CONTAINER_STATE (default /tmp/raft-trio-containers), named by
# CONTAINERS_CONF: runc as the runtime and open-file limits for the
# containers, which podman 4.3 as root on these machines needs.
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
base=${RAFT_CONTAINER_BASE:-localhost/debian-python}
mkdir -p "$state"
started=$SECONDS

# 1. podman (Debian's 4.3), the runtime and the network tools.
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v iptables >/dev/null || need+=(iptables)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || unable "no podman, and no apt-get to install it"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
        unable "apt-get install ${need[*]} failed"
fi
python -c 'import podman_compose' 2>/dev/null || unable "podman-compose is not installed here (pip install -e '.[test]')"

cat >"$state/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$state/containers.conf"
installed=$SECONDS

# 2. The base image: no registry is reachable, so make one from Debian's
# packages when it is not there yet.
if ! podman image exists "$base"; then
    [ "$base" = localhost/debian-python ] || unable "the base image $base does not exist"
    rm -rf "$state/rootfs"
    timeout 600 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$state/rootfs" >"$state/debootstrap.log" 2>&1 ||
        unable "debootstrap failed (see $state/debootstrap.log)"
    tar -C "$state/rootfs" -c . | podman import - "$base" >/dev/null || unable "podman import failed"
    rm -rf "$state/rootfs"
fi
podman run --rm "$base" python3 -c 'import venv' || unable "podman cannot run a container here"
based=$SECONDS

# 3. pip inside the build trusts what the host trusts (a TLS-inspecting
# proxy's CA, if any): the host's bundle and a pip.conf naming it, mounted
# into the build's RUN steps only.
bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
build_args=()
if [ -f "$bundle" ]; then
    printf '[global]\ncert = /etc/ssl/certs/host-ca.crt\n' >"$state/pip.conf"
    build_args=(-v "$bundle:/etc/ssl/certs/host-ca.crt:ro" -v "$state/pip.conf:/etc/pip.conf:ro")
fi

echo "full container test: set up in $((based - started)) s" \
    "(packages $((installed - started)) s, base image $((based - installed)) s)"
RAFT_CONTAINER_TESTS=1 RAFT_CONTAINER_BASE="$base" RAFT_CONTAINER_BUILD_ARGS="${build_args[*]}" \
    python -m pytest -p no:xdist -m container tests/containers -s -q
