#!/usr/bin/env bash
# Builds libimpp (release) and runs the C example against it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --lib
out=target/release/examples
mkdir -p "$out"
cc -std=c11 -Wall -Wextra -O2 -Iinclude examples/presence.c \
   -Ltarget/release -Wl,-rpath,"$PWD/target/release" -limpp -o "$out/presence_c"
"$out/presence_c"
