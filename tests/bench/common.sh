# Sourced by the bench scripts (after `set -euo pipefail` and root=): the
# build measured ($1, default build) and its nibble, which must exist;
# shared (../shared); threads, the --threads of NB_THREADS (unset: nibble's
# default, one per big core); tmp, a directory removed at exit; and the
# texts: the evaluation ones (texts, NAME:PATH entries) and the calibration
# one (calib), from ../shared/data when it is there, else the excerpts
# vendored in tests/data.
build=${1:-$root/build}
nibble=$build/nibble
shared=$root/../shared
threads=(${NB_THREADS:+--threads "$NB_THREADS"})
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$nibble" ] || { echo "no nibble in $build (build it first)" >&2; exit 1; }

if [ -d "$shared/data" ]; then
  texts=("wiki.test.raw:$shared/data/wiki.test.raw"
         "TinyStories:$shared/data/tinystories_valid.txt")
  calib=$shared/data/kjv.txt
else
  texts=("TinyStories:$root/tests/data/tinystories_head.txt")
  calib=$root/tests/data/kjv_head.txt
fi
