# The frame the section scripts share (cli.sh, chat.sh, bad_input.sh,
# tokenize.sh), sourced after `set -u`: a failure count and fail, a
# command that is not found counted as a failure, and run_section, which
# runs section_NAME and fails when there is no such section: a misspelt
# name never passes as "all checks passed".
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
set -E
trap '[ $? -ne 127 ] || fail "line $LINENO: command not found"' ERR

run_section() {
  local section=${1:-}
  if [ -z "$section" ] || ! declare -F "section_${section//-/_}" >/dev/null; then
    echo "FAIL: no section '$section' in $0" >&2
    exit 1
  fi
  "section_${section//-/_}"
  if [ "$failures" -ne 0 ]; then
    echo "$section: $failures failure(s)" >&2
    exit 1
  fi
  echo "$section: all checks passed"
}
