#!/usr/bin/env bash
# `make deploy-test`: the project's image built offline and its deployment
# paths run as containers on this machine (docs/kubeflow.md, "Run it here").
#
#   1. Docker from Debian (docker.io) and debootstrap, installed if missing;
#   2. a Docker daemon: the one running, or one started here without a
#      bridge or iptables rules (containers use --network=none or the host
#      network with servers on 127.0.0.1) and stopped again at the end;
#   3. the base image $BASE_IMAGE: Debian (this machine's release) from the
#      mirror this machine's apt sources name, made with debootstrap and
#      `docker import`, once (kept while the image exists);
#   4. the project's image $IMAGE from deploy/docker/Dockerfile on it, pip
#      reaching the index this machine's pip uses (--network=host);
#   5. the tests marked `deploy` (tests/containers/), which skip unless
#      TFP_VAE_DEPLOY_TESTS=1 (set here).
#
# Variables: PYTHON (the venv's python), IMAGE, BASE_IMAGE, DEPLOY_STATE (the
# daemon's log and data, the Python docker client), PYTEST_ARGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
IMAGE=${IMAGE:-tfp-vae:deploy-test}
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
BASE_IMAGE=${BASE_IMAGE:-tfp-vae-base:$SUITE}
DEPLOY_STATE=${DEPLOY_STATE:-/var/tmp/tfp-vae-deploy}
mkdir -p "$DEPLOY_STATE"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
say() { echo "deploy-test: $*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

install_tools() {
  local missing=""
  command -v docker >/dev/null || missing="$missing docker.io"
  command -v dockerd >/dev/null || missing="$missing docker.io"
  command -v debootstrap >/dev/null || missing="$missing debootstrap"
  [ -z "$missing" ] && return 0
  say "installing$missing"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    $missing >/dev/null
}

# The daemon: started only when none answers, detached from this script's
# output (its log goes to a file), and stopped on exit.
STARTED_PID=""
stop_daemon() {
  [ -n "$STARTED_PID" ] || return 0
  say "stopping the Docker daemon started here (pid $STARTED_PID)"
  $SUDO kill "$STARTED_PID" 2>/dev/null || true
  for _ in $(seq 60); do
    $SUDO kill -0 "$STARTED_PID" 2>/dev/null || return 0
    sleep 1
  done
  $SUDO kill -9 "$STARTED_PID" 2>/dev/null || true
}

ensure_daemon() {
  if docker info >/dev/null 2>&1; then
    say "using the running Docker daemon"
    return 0
  fi
  say "starting dockerd (no bridge, no iptables; log: $DEPLOY_STATE/dockerd.log)"
  $SUDO setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    --ip-forward=false --ip-masq=false \
    </dev/null >"$DEPLOY_STATE/dockerd.log" 2>&1 &
  STARTED_PID=$!
  trap stop_daemon EXIT
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    $SUDO kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 1
  done
  say "the Docker daemon did not start:"
  tail -20 "$DEPLOY_STATE/dockerd.log" >&2
  return 1
}

# The Debian mirror this machine's apt uses: the first URI of a deb source
# for $SUITE, from deb822 .sources files or one-line sources.list entries.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v suite="$SUITE" '
      /^[ \t]*$/ { if (deb && has && uri) { print uri; done=1; exit } deb=has=0; uri=""; next }
      tolower($1) == "types:" { deb = ($0 ~ /[ \t]deb([ \t]|$)/) }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has=1 }
      END { if (!done && deb && has && uri) print uri }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk -v suite="$SUITE" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++; if ($i ~ /^\[/ || $i ~ /\]$/) i++
        if ($(i+1) == suite) print $i }' "$f"
  done
}

make_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE exists: kept"
    return 0
  fi
  local mirror start rootfs
  mirror=$(apt_mirror | head -1)
  if [ -z "$mirror" ]; then
    say "no deb source for $SUITE in /etc/apt: cannot make $BASE_IMAGE"
    return 1
  fi
  start=$(date +%s)
  rootfs="$DEPLOY_STATE/rootfs"
  $SUDO rm -rf "$rootfs"
  say "debootstrap $SUITE from $mirror into $rootfs"
  $SUDO debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$mirror" >"$DEPLOY_STATE/debootstrap.log" 2>&1 || {
      tail -20 "$DEPLOY_STATE/debootstrap.log" >&2; return 1; }
  # pip inside the image trusts what this machine trusts (a mirror's CA).
  $SUDO cp /etc/ssl/certs/ca-certificates.crt \
    "$rootfs/etc/ssl/certs/ca-certificates.crt"
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # Debian's Python is externally managed; the image is the environment.
  $SUDO tar -C "$rootfs" -c . | docker import \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' - "$BASE_IMAGE" >/dev/null
  $SUDO rm -rf "$rootfs"
  say "base image $BASE_IMAGE made in $(elapsed "$start")"
}

# The index this machine's pip installs from (PIP_INDEX_URL, then pip's
# configuration), else empty: pip's own default in the image too.
pip_index() {
  local url="${PIP_INDEX_URL:-}"
  [ -n "$url" ] || url=$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)
  [ -n "$url" ] || url=$("$PYTHON" -m pip config get install.index-url 2>/dev/null || true)
  echo "$url"
}

build_image() {
  local start
  start=$(date +%s)
  say "building $IMAGE on $BASE_IMAGE (pip index: $(pip_index || true))"
  docker build -q --network=host -f deploy/docker/Dockerfile \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "PIP_INDEX_URL=$(pip_index)" \
    -t "$IMAGE" . >"$DEPLOY_STATE/build.log" 2>&1 || {
      tail -40 "$DEPLOY_STATE/build.log" >&2; return 1; }
  say "image $IMAGE built in $(elapsed "$start"):" \
    "$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
}

# The tests drive Docker through the `docker` Python client (kfp's
# DockerRunner needs it); it goes beside the venv, not into it.
python_client() {
  local target="$DEPLOY_STATE/python"
  if ! PYTHONPATH="$target" "$PYTHON" -c 'import docker' 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --target "$target" --no-deps docker
  fi
  echo "$target"
}

main() {
  local pythonpath skip=""
  install_tools || say "could not install docker.io and debootstrap from apt"
  if ensure_daemon; then
    make_base_image
    build_image
  else
    # The tests then skip, each saying why.
    skip="no Docker daemon could start here: $(tail -1 "$DEPLOY_STATE/dockerd.log" 2>/dev/null)"
  fi
  pythonpath=$(python_client)
  TFP_VAE_DEPLOY_TESTS=1 TFP_VAE_DEPLOY_IMAGE="$IMAGE" \
    TFP_VAE_DEPLOY_SKIP="$skip" \
    PYTHONPATH="$pythonpath${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m pytest -q -p no:cacheprovider -m deploy tests/containers ${PYTEST_ARGS:-}
}

main "$@"
