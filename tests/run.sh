#!/usr/bin/env bash
# The whole test suite: the native build, then the aarch64 build under qemu
# on three CPU models (cortex-a72 = Pi 4, cortex-a76 = Pi 5 / Orin, max =
# i8mm), then the static aarch64 binary. Ends with one line:
#   N passed, N failed, N skipped
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tools/deps.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

passed=0 failed=0 skipped=0
log_dir=$root/build-logs
mkdir -p "$log_dir"

# Adds a meson test run's summary to the totals; a run that printed no
# summary (a build that broke) counts as one failure.
tally() {
  local log=$1 ok fail skip
  ok=$(awk '/^Ok:/ {s+=$2} /^Expected Fail:/ {s+=$3} END {print s+0}' "$log")
  fail=$(awk '/^Fail:/ {s+=$2} /^Unexpected Pass:/ {s+=$3} /^Timeout:/ {s+=$2} END {print s+0}' "$log")
  skip=$(awk '/^Skipped:/ {s+=$2} END {print s+0}' "$log")
  if ! grep -q '^Ok:' "$log"; then fail=$((fail + 1)); fi
  passed=$((passed + ok)) failed=$((failed + fail)) skipped=$((skipped + skip))
}

# configure BUILD_DIR [meson setup args...]
configure() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$log_dir/${dir##*/}-setup.log" 2>&1 ||
      { cat "$log_dir/${dir##*/}-setup.log"; return 1; }
  fi
  ninja -C "$dir" >"$log_dir/${dir##*/}-build.log" 2>&1 ||
    { tail -n 40 "$log_dir/${dir##*/}-build.log"; return 1; }
}

# suite NAME BUILD_DIR [env...] [-- meson test args...]
suite() {
  local name=$1 dir=$2; shift 2
  local log=$log_dir/$name.log vars=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  echo "== $name"
  env "${vars[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs -t 4 "$@" >"$log" 2>&1
  grep -E '^ *[0-9]+/[0-9]+ ' "$log" | grep -vE ' OK | SKIP ' | sed 's/^/   /'
  # what the failing checks said, so a CI log names them without the files
  grep -aE '^FAIL|check failed|Traceback|Error' "$log" | sort -u | head -n 20 | cut -c1-300 |
    sed 's/^/     /'
  grep -E '^(Ok|Fail|Skipped):' "$log" | tr -s ' ' | paste -sd' ' | sed 's/^/   /'
  tally "$log"
}

# Each fuzz target for a short while from fixed seeds, one test per
# target: a crash fails it, and the CI log keeps the input (base64).
fuzz_smoke() {
  local log=$log_dir/fuzz.log line
  echo "== fuzz"
  NB_FUZZ_JOBS=$(nproc) bash tests/fuzz/run.sh --seconds "${NB_FUZZ_SECONDS:-20}" >"$log" 2>&1
  local lines
  lines=$(grep -E '^[a-z0-9]+ +execs ' "$log")
  if [ -z "$lines" ]; then
    tail -n 30 "$log" | sed 's/^/     /'; failed=$((failed + 1)); return
  fi
  while read -r line; do
    echo "   $line"
    if [[ $line == *"crashes 0" ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done <<<"$lines"
  # a crash's report and input, as tests/fuzz/run.sh printed them
  sed -n '/^---- /,/^---- save it/p' "$log" | head -n 200 | cut -c1-300 | sed 's/^/     /'
}

if configure build; then
  suite native build
else
  echo "native build failed"; failed=$((failed + 1))
fi

# The same suite built by clang with AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer, every report fatal, asserts on; the AWQ
# quality sections (suite 'quality', half an hour under ASan) run there in
# their reduced form (cli-quantize, test_awq). Then the fuzz targets, a
# short run each from fixed seeds (tests/fuzz/run.sh; a crash fails it and
# prints its input).
if command -v clang >/dev/null; then
  if CC=clang CXX=clang++ configure build-asan -Db_sanitize=address,undefined -Db_lundef=false \
       -Dbuildtype=debugoptimized -Dc_args=-fno-sanitize-recover=all \
       -Dcpp_args=-fno-sanitize-recover=all; then
    suite sanitizers build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 -- --no-suite quality
  else
    echo "sanitizer build failed"; failed=$((failed + 1))
  fi
  fuzz_smoke
else # a board: tools/deps.sh installs clang only where it cross-builds
  echo "clang missing: no sanitizer build"; skipped=$((skipped + 1))
fi

if [ "$(uname -m)" != aarch64 ]; then
  # Meson cross files cannot name their own directory: this one-line file
  # gives them the checkout's path as the constant `root`.
  printf "[constants]\nroot = '%s'\n" "$root" > "$root/build-paths.ini"
  cross=(--cross-file "$root/build-paths.ini")
  if configure build-arm64 "${cross[@]}" --cross-file cross/aarch64-linux.ini; then
    for cpu in cortex-a72 cortex-a76 max; do
      suite "aarch64-$cpu" build-arm64 NB_QEMU_CPU=$cpu
    done
  else
    echo "aarch64 build failed"; failed=$((failed + 1))
  fi
  if configure build-arm64-static "${cross[@]}" --cross-file cross/aarch64-linux-static.ini; then
    suite "aarch64-static-cortex-a76" build-arm64-static NB_QEMU_CPU=cortex-a76
  else
    echo "static aarch64 build failed"; failed=$((failed + 1))
  fi
fi

echo "logs: $log_dir"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
