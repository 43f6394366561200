#!/usr/bin/env bash
# The whole test suite: installs the real peers it needs, then runs every test.
#
#   scripts/test.sh
#
# Peers: Prometheus, promtool and Alertmanager (Debian packages `prometheus`,
# `prometheus-alertmanager`), `openssl` (test certificates), and in a venv under .peers/
# the Python `prometheus-client` reference parsers and the OTLP receiver's
# `opentelemetry-proto`, `grpcio` and `grpcio-status`. A peer that cannot be installed stops the suite with an error:
# nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

install_debian_peers() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  # Makes the certificate authority and receiver certificate of the OTLP TLS tests.
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install ${missing[*]}"
    sudo=sudo
  fi
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "could not install ${missing[*]}"
  # The packages enable services; the tests start their own servers on loopback.
  pkill -x prometheus 2>/dev/null || true
  pkill -x prometheus-alertmanager 2>/dev/null || true
}

install_python_peers() {
  local venv=.peers/venv
  if ! "$venv/bin/python" -c 'import prometheus_client.openmetrics.parser, opentelemetry.proto.collector.trace.v1.trace_service_pb2, grpc, grpc_status.rpc_status' 2>/dev/null; then
    say "creating $venv with prometheus-client, opentelemetry-proto, grpcio and grpcio-status"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check 'prometheus-client>=0.20' 'opentelemetry-proto>=1.27,<2' 'grpcio>=1.60' 'grpcio-status>=1.60' \
      || die "could not install prometheus-client, opentelemetry-proto, grpcio and grpcio-status from PyPI"
  fi
  export OTEL_LITE_PYTHON="$PWD/$venv/bin/python"
}

install_debian_peers
install_python_peers
for bin in prometheus promtool; do command -v "$bin" >/dev/null || die "$bin is still missing"; done

say "cargo test (workspace, all features)"
cargo test --workspace --all-features --locked

say "OTLP without the otlp-grpc feature (a grpc protocol setting falls back to HTTP)"
cargo test -p otel-lite-exporters --no-default-features --features otlp --lib --locked

say "loom models (otel-lite-core)"
# A separate target dir: the loom cfg rebuilds everything and must not evict the main cache.
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" RUSTFLAGS="--cfg otel_lite_loom" \
  CARGO_TARGET_DIR=target/loom cargo test -p otel-lite-core --release --locked --test loom

say "all tests passed"
