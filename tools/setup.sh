#!/usr/bin/env bash
# One command on a fresh Debian 12 / Raspberry Pi OS machine: installs the
# build dependencies (apt), builds nibble, converts the bundled demo model
# (stories260K, tests/data) and starts a chat with it.
#   tools/setup.sh [chat options...]    e.g. tools/setup.sh --temp 0.9 --seed 7
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tools/deps.sh --native
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
model=build/stories260K.nib
if [ ! -f "$model" ]; then
  build/nibble convert -q tests/data/stories260K/stories260K.bin \
    --tokenizer tests/data/stories260K/tok512.model -o "$model"
fi
echo "nibble is built: build/nibble (try build/nibble --help). Chatting with $model," >&2
echo "a tiny model of children's stories: type the start of one (\"Once upon a time\")." >&2
echo >&2
exec build/nibble chat -m "$model" --template plain "$@"
