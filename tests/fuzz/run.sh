#!/usr/bin/env bash
# Fuzzes the loaders with libFuzzer, one target after another:
#   bash tests/fuzz/run.sh [--seconds N | --long] [--keep] [TARGET...]
# TARGET: nib safetensors json config autoawq llama2c spm detok gguf tokjson request ct
# (default:
# all). Each runs N seconds (default 30; --long: 600 and --keep), fixed
# seed. Configures and builds build-fuzz (clang, ASan + UBSan, libFuzzer
# coverage of the whole library) if needed, writes the seeds (tiny models
# from mkseeds, the real files of tests/data, stories260K converted to .nib
# and quantized) and merges tests/fuzz/corpus/TARGET and
# tests/fuzz/regress/TARGET. Prints one line per target (executions,
# exec/s, final cov and ft, crashes); a crash or sanitizer report prints
# the report's head, the input's path and a base64 dump, and the script
# exits 1 after the other targets. --keep goes on from the corpus the last
# run grew (build-fuzz/fuzz-work/corpus) instead of starting from the
# seeds. NB_FUZZ_JOBS sets ninja's -j (default 1).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

all=(nib safetensors json config autoawq llama2c spm detok gguf tokjson request ct)
seconds=30 keep=0 targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:-}; shift 2 ;;
    --long) seconds=600 keep=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) if [[ " ${all[*]} " != *" $1 "* ]]; then
         echo "run.sh: unknown target '$1' (targets: ${all[*]})" >&2; exit 2
       fi
       targets+=("$1"); shift ;;
  esac
done
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: --seconds expects a positive whole number" >&2; exit 2
fi
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

build=build-fuzz
work=$build/fuzz-work
mkdir -p "$build"
start=$SECONDS

# ---- build ----
flags="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all"
flags+=" -fsanitize-coverage-ignorelist=$root/tests/fuzz/coverage-ignore.txt"
if [ ! -f "$build/build.ninja" ]; then
  setup=(setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
         -Dbuildtype=debugoptimized)
else
  setup=(configure "$build")  # the flags below may have changed since
fi
if ! CC=clang CXX=clang++ meson "${setup[@]}" -Dc_args="$flags" -Dcpp_args="$flags" \
     >"$build/fuzz-setup.log" 2>&1; then
  tail -n 30 "$build/fuzz-setup.log"; echo "run.sh: meson ${setup[0]} failed" >&2; exit 1
fi
# ninja does not see the ignorelist as an input: rebuild all when it changed
if ! cmp -s tests/fuzz/coverage-ignore.txt "$build/fuzz-coverage-ignore.txt"; then
  ninja -C "$build" -t clean >/dev/null
  cp tests/fuzz/coverage-ignore.txt "$build/fuzz-coverage-ignore.txt"
fi
exes=(tests/fuzz/fuzz_mkseeds nibble tests/test_ct)
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz_$t"); done
if ! ninja -C "$build" -j "${NB_FUZZ_JOBS:-1}" "${exes[@]}" >"$build/fuzz-build.log" 2>&1; then
  tail -n 40 "$build/fuzz-build.log"; echo "run.sh: build failed" >&2; exit 1
fi
echo "fuzz: built in $((SECONDS - start)) s"

# ---- seeds ----
seeds=$work/seeds
s260k=tests/data/stories260K
rm -rf "$seeds" "$work/crashes"
mkdir -p "$work/logs"
if ! "$build/tests/fuzz/fuzz_mkseeds" "$seeds" tests/data; then
  echo "run.sh: writing the seeds failed" >&2; exit 1
fi
for t in "${all[@]}"; do mkdir -p "$seeds/$t"; done # a target mkseeds has no seeds for
cp "$s260k/stories260K.bin" "$seeds/llama2c/"
# ct: test_ct's fixture (u32 length, config.json, model.safetensors)
rm -rf "$work/ct-fixture"
if "$build/tests/test_ct" "$s260k/tok512.model" --write "$work/ct-fixture" >/dev/null; then
  python3 -c 'import struct, sys
c = open(sys.argv[1] + "/config.json", "rb").read()
w = open(sys.argv[1] + "/model.safetensors", "rb").read()
open(sys.argv[2], "wb").write(struct.pack("<I", len(c)) + c + w)' "$work/ct-fixture" "$seeds/ct/fixture"
fi
find tests/bpe -maxdepth 1 -name "*.json" ! -name "*.files.json" -exec cp {} "$seeds/tokjson/" \;
cp "$s260k/hf/model.safetensors" "$seeds/safetensors/stories260K.safetensors"
if [[ " ${targets[*]} " == *" nib "* ]]; then
  "$build/nibble" convert --from llama2c "$s260k/stories260K.bin" --tokenizer \
    "$s260k/tok512.model" -o "$seeds/nib/stories260K.nib" >/dev/null 2>&1 &&
  "$build/nibble" quantize -m "$seeds/nib/stories260K.nib" --method rtn --group 32 \
    -o "$seeds/nib/stories260K-q4.nib" >/dev/null 2>&1 ||
    echo "run.sh: note: stories260K did not convert; the nib target starts from the tiny seeds"
fi

# ---- fuzzing ----
# The importers' scratch folders: in memory when there is /dev/shm (the
# writer syncs every file it commits), removed at the end even after a crash
tmp=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/nibble-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  [ "$keep" = 1 ] || rm -rf "$corpus"
  mkdir -p "$corpus" "$work/crashes/$t"
  # -max_len: the largest seed, and at least room to grow the small ones
  max_len=$(find "$seeds/$t" tests/fuzz/corpus/$t -type f -printf '%s\n' | sort -n | tail -n 1)
  [ "${max_len:-0}" -ge 65536 ] || max_len=65536
  log=$work/logs/$t.log
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  TMPDIR=$tmp UBSAN_OPTIONS=print_stacktrace=1 "$build/tests/fuzz/fuzz_$t" -seed=1 "${dict[@]}" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len="$max_len" \
    -timeout=20 -print_final_stats=1 -artifact_prefix="$work/crashes/$t/" \
    "$corpus" "$seeds/$t" "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t" >"$log" 2>&1
  rc=$?
  execs=$(awk '/^stat::number_of_executed_units/ {print $NF}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec/ {print $NF}' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  units=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  # crash-, leak-, timeout-, oom- files (a slow-unit- one is only slow)
  crashes=$(find "$work/crashes/$t" -type f ! -name 'slow-unit-*' | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  printf '%-12s execs %9s  exec/s %6s  cov %5s  ft %6s  corpus %5s  crashes %s\n' "$t" \
    "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    failed=1
    echo "---- $t: the report ($log)"
    grep -aE 'ERROR|SUMMARY|runtime error|^fuzz:|deadly signal|^ *#[0-9]+ 0x' "$log" | head -n 30
    for f in "$work/crashes/$t"/*; do
      [ -f "$f" ] && [[ $f != */slow-unit-* ]] || continue
      size=$(stat -c %s "$f")
      echo "---- $t: input $f ($size bytes), base64:"
      if [ "$size" -le 16384 ]; then base64 -w 100 "$f"; else
        echo "(too large to print; first 4096 bytes)"; head -c 4096 "$f" | base64 -w 100; fi
    done
    echo "---- save it as tests/fuzz/regress/$t/<what-it-found>;" \
         "replay: $build/tests/fuzz/fuzz_$t FILE"
  fi
done
echo "fuzz: $((SECONDS - start)) s in all; logs in $work/logs"
exit "$failed"
