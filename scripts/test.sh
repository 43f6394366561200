#!/usr/bin/env bash
# The whole test suite: installs the real peers it needs, then runs every test.
#
#   scripts/test.sh
#   FUZZ=1 FUZZ_SECONDS=60 scripts/test.sh   # also fuzz each target (fuzz/) for 60 s
#
# Peers: Prometheus, promtool and Alertmanager (Debian packages `prometheus`,
# `prometheus-alertmanager`), `openssl` (test certificates), `chromium` and
# `fonts-dejavu-core` (the live page's browser test), and in a venv under .peers/
# the Python `prometheus-client` reference parsers, the OTLP receiver's
# `opentelemetry-proto`, `grpcio` and `grpcio-status`, and `websockets` (the browser driver). A peer that cannot be installed stops the suite with an error:
# nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh build of every test, example and peer comparison is large. Incremental state
# (nothing to reuse on a fresh machine) and full debug info more than double it; line
# tables keep file:line in backtraces. CI once ran out of disk without these.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

# Each step says when it starts (seconds since this script began), so a slow step shows.
say() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

install_debian_peers() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  # Makes the certificate authority and receiver certificate of the OTLP TLS tests.
  command -v openssl >/dev/null || missing+=(openssl)
  # The live page's browser test (tests/live_page.rs): headless Chromium, and a font for its screenshots.
  command -v chromium >/dev/null || missing+=(chromium)
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
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
  if ! "$venv/bin/python" -c 'import prometheus_client.openmetrics.parser, opentelemetry.proto.collector.trace.v1.trace_service_pb2, grpc, grpc_status.rpc_status, websockets.sync.client' 2>/dev/null; then
    say "creating $venv with prometheus-client, opentelemetry-proto, grpcio, grpcio-status and websockets"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check 'prometheus-client>=0.20' 'opentelemetry-proto>=1.27,<2' 'grpcio>=1.60' 'grpcio-status>=1.60' 'websockets>=13,<18' \
      || die "could not install prometheus-client, opentelemetry-proto, grpcio, grpcio-status and websockets from PyPI"
  fi
  export OTEL_LITE_PYTHON="$PWD/$venv/bin/python"
}

install_debian_peers
install_python_peers
for bin in prometheus promtool prometheus-alertmanager chromium; do command -v "$bin" >/dev/null || die "$bin is still missing"; done

# Nightly for miri and cargo-fuzz; installed here when missing.
ensure_nightly() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal \
    || die "could not install the nightly toolchain (miri and cargo-fuzz need it)"
}

# Each fuzz target for $1 seconds; crashes are written to fuzz/artifacts/.
fuzz_all() {
  local seconds="$1" target scratch log
  for target in propagation env receiver_replies exposition live_requests; do
    # New inputs go to a scratch directory: the committed seeds stay as they are.
    scratch="$(mktemp -d)"
    log="$(mktemp)"
    if ! cargo +nightly fuzz run -O "$target" "$scratch" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
      tail -n 60 "$log"
      die "fuzz target $target failed (its input is in fuzz/artifacts/$target/; make it a regression test)"
    fi
    # libFuzzer's summary; a run that reports none ran no input, which is a failure too.
    grep -E '^Done [1-9]' "$log" || { tail -n 20 "$log"; die "fuzz target $target reported no runs"; }
    rm -rf "$scratch" "$log"
  done
}

# The toolchain is complete before the background fuzzing starts using it.
ensure_nightly
rustup component list --toolchain nightly --installed | grep -q '^miri' \
  || rustup component add miri rust-src --toolchain nightly || die "could not add miri to the nightly toolchain"

say "cargo test (workspace, all features): building"
cargo test --workspace --all-features --locked --no-run

fuzz_pid=""
if [ "${FUZZ:-0}" = 1 ]; then
  seconds="${FUZZ_SECONDS:-60}"
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || die "could not install cargo-fuzz"
  # In the background from here on: the tests mostly wait on peers and sleeps, and miri
  # interprets on one core, so the fuzz build fills the idle one. Its output is shown
  # when it ends.
  say "fuzzing each target for ${seconds} s, in the background (fuzz/; crashes go to fuzz/artifacts/)"
  fuzz_log="$(mktemp)"
  fuzz_all "$seconds" >"$fuzz_log" 2>&1 &
  fuzz_pid=$!
  # If a later step fails, the fuzzing stops with it.
  trap 'pkill -P "$fuzz_pid" 2>/dev/null || true; kill "$fuzz_pid" 2>/dev/null || true' EXIT
fi

say "cargo test (workspace, all features)"
cargo test --workspace --all-features --locked

say "OTLP without the otlp-grpc feature (a grpc protocol setting falls back to HTTP)"
cargo test -p otel-lite-exporters --no-default-features --features otlp --lib --locked

say "loom models (otel-lite-core)"
# A separate target dir: the loom cfg rebuilds everything and must not evict the main cache.
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" RUSTFLAGS="--cfg otel_lite_loom" \
  CARGO_TARGET_DIR=target/loom cargo test -p otel-lite-core --release --locked --test loom --test loom_stripe_budget --test loom_eviction

say "miri: unit tests of every module with unsafe code (otel-lite-core)"
# The clock's tests read the wall clock: isolation off. Every test of these modules runs;
# `#[cfg_attr(miri, ignore = "...")]` marks, with its reason, what miri cannot run.
MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri \
  cargo +nightly miri test -p otel-lite-core --lib --locked -- \
  pipeline:: trace::future:: metrics::exemplar:: metrics::series:: metrics::cell:: clock:: epoch:: attributes::
# `SharedStr` lays its bytes out by hand, around the pointer size: its tests again with
# 32-bit pointers (miri interprets the target; nothing needs to run natively).
MIRIFLAGS="-Zmiri-strict-provenance" CARGO_TARGET_DIR=target/miri \
  cargo +nightly miri test -p otel-lite-core --lib --locked --target i686-unknown-linux-gnu -- attributes::

if [ -n "$fuzz_pid" ]; then
  say "fuzzing: waiting for the background run"
  if ! wait "$fuzz_pid"; then
    cat "$fuzz_log"
    die "fuzzing failed"
  fi
  trap - EXIT
  cat "$fuzz_log"
  rm -f "$fuzz_log"
fi

say "all tests passed"
df -h . | tail -n 1
