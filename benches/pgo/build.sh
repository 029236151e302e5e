#!/usr/bin/env bash
# The profile-guided release build of edgeguard, the one to ship (the Dockerfile
# builds it):
#
#   benches/pgo/build.sh            # → target/pgo/release/edgeguard
#
# 1. an instrumented build (target/pgo-gen) serves the training run
#    (benches/pgo/train.rs: allowed, refused and file traffic on loopback, every
#    status checked) and writes its profile at a clean exit;
# 2. llvm-profdata (rustup's llvm-tools component, added if missing) merges it;
# 3. the optimized build uses it.
#
# Needs only Rust (rustup) and loopback. Takes two release builds and about 15 s
# of training. TRAIN_SECONDS sets each training phase's length (default 4).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
raw=$root/target/pgo-raw
profile=$root/target/pgo-gen/edgeguard.profdata

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$sysroot/lib/rustlib/$host/bin/llvm-profdata
if [[ ! -x $profdata ]]; then
    echo "adding rustup's llvm-tools component (llvm-profdata)" >&2
    rustup component add llvm-tools >&2
fi

echo "building edgeguard instrumented (target/pgo-gen)" >&2
RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR=$root/target/pgo-gen \
    cargo build --release --locked --quiet --bin edgeguard
# Build scripts ran instrumented too: only the gateway's own run counts.
rm -rf "$raw"

echo "training it (benches/pgo/train.rs)" >&2
cargo build --release --locked --quiet --example pgo-train
target/release/examples/pgo-train target/pgo-gen/release/edgeguard "${TRAIN_SECONDS:-4}"
"$profdata" merge -o "$profile" "$raw"/*.profraw

echo "building edgeguard with the profile (target/pgo)" >&2
RUSTFLAGS="-Cprofile-use=$profile" CARGO_TARGET_DIR=$root/target/pgo \
    cargo build --release --locked --quiet --bin edgeguard
echo "target/pgo/release/edgeguard"
