#!/usr/bin/env bash
# Builds libimpp (release) and runs a C example against it: examples/c/presence.c, or the
# one named as the argument (presence, watch_buddies, publish_status).
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-presence}"
cargo build --release --lib
target="${CARGO_TARGET_DIR:-target}/release"
out="$target/examples"
mkdir -p "$out"
cc -std=c11 -Wall -Wextra -O2 -Iinclude "examples/c/$name.c" \
   -L"$target" -Wl,-rpath,"$(cd "$target" && pwd)" -limpp -o "$out/${name}_c"
"$out/${name}_c"
