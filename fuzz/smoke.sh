#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in this directory and runs each one for
# FUZZ_SECONDS seconds (default 20), seeded with the RFC 4475 torture messages.
# Exits non-zero if any target crashes; the crashing input is left in fuzz/artifacts/<target>/.
#
#   fuzz/smoke.sh                    # every target, 20 s each
#   FUZZ_SECONDS=300 fuzz/smoke.sh sip_message
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Only the stable toolchain is
# installed, so the nightly-only flags cargo-fuzz passes are unlocked with RUSTC_BOOTSTRAP=1.
# Fuzz builds use other RUSTFLAGS than normal builds, so they get their own target
# directory (FUZZ_TARGET_DIR) instead of invalidating the main one.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
# The SIP crate forbids unsafe code, so AddressSanitizer buys little and halves the
# executions per second; FUZZ_SANITIZER=address turns it back on.
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/switchboard-fuzz-target}"

seeds=../crates/proto/sip/tests/data/rfc4475
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ "$#" -gt 0 ]; then
  for t in "${targets[@]}"; do cargo fuzz build --sanitizer="$sanitizer" "$t"; done
else
  cargo fuzz build --sanitizer="$sanitizer"
fi

failed=()
for t in "${targets[@]}"; do
  # libFuzzer writes new inputs into the first corpus directory: give it a scratch copy
  # so the checked-in seeds stay untouched.
  mkdir -p "$work/$t"
  case "$t" in
    sdp) cp ../crates/proto/sdp/tests/data/*.sdp "$work/$t/" ;;
    rtmp_flv) cp ../crates/proto/rtmp/tests/data/*.flv.bin "$work/$t/" ;;
    *) cp "$seeds"/*.dat "$work/$t/" ;;
  esac
  printf '\n== fuzz %s for %ss\n' "$t" "$seconds"
  if ! cargo fuzz run --sanitizer="$sanitizer" "$t" "$work/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke: crash in ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz smoke: ${targets[*]} ran ${seconds}s each without a crash"
