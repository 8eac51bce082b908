#!/usr/bin/env bash
# Installs what nibble needs, from Debian's packages only, and nothing twice.
#   tools/deps.sh           native build + the aarch64 cross toolchain, qemu and sysroots
#   tools/deps.sh --native  native build only (what a Raspberry Pi needs)
# The arm64 libsentencepiece cannot be installed beside the amd64 one by
# multiarch, so its .debs are fetched with a separate apt state whose
# sources are derived from this machine's own apt configuration, and
# unpacked into .deps/arm64. The static variant needs a static library,
# which Debian does not ship: it is built from Debian's source package.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps=$root/.deps
# (python3-numpy: the float64 references of tests/ref, which the family
# tests run with /usr/bin/python3)
native_pkgs=(gcc g++ meson ninja-build pkg-config libsentencepiece-dev
             libonig-dev libutf8proc-dev libjansson-dev zlib1g-dev xz-utils python3-numpy
             libmicrohttpd-dev curl python3-venv)
# clang with its sanitizer and libFuzzer runtimes: the sanitizer build
# and the fuzz targets of tests/run.sh (CI machines, not boards)
check_pkgs=(clang libclang-rt-dev)
cross_pkgs=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
            cmake make dpkg-dev)

say() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A private apt configuration for arm64, with binary and source entries,
# copied from the machine's own sources (no registry host is written here).
arm64_apt_setup() {
  local etc=$deps/apt/etc
  mkdir -p "$etc/sources.list.d" "$etc/preferences.d" "$deps/apt/lists/partial" \
           "$deps/apt/cache/archives/partial"
  : > "$etc/sources.list"
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >> "$etc/sources.list" || true
    grep -E '^deb ' /etc/apt/sources.list >> "$etc/sources.list" || true
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && sed 's/^Types: *deb *$/Types: deb deb-src/' "$f" > "$etc/sources.list.d/${f##*/}"
  done
  for f in /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] && { grep -E '^deb ' "$f" | sed 's/^deb /deb-src /'; cat "$f"; } \
      > "$etc/sources.list.d/${f##*/}"
  done
  APT_ARM64=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o Dir::State::Lists="$deps/apt/lists" -o Dir::State::status=/dev/null
    -o Dir::Etc::SourceList="$etc/sources.list" -o Dir::Etc::SourceParts="$etc/sources.list.d"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$etc/preferences.d"
    -o Dir::Cache="$deps/apt/cache" -o APT::Sandbox::User=root -qq)
  # Some third-party sources have no arm64 or source lists: what matters
  # is only that Debian's are there, which the downloads below check.
  apt-get "${APT_ARM64[@]}" update >/dev/null 2>&1 || say "apt update reported errors (ignored)"
}

arm64_sysroot() {
  [ -f "$deps/arm64/.done" ] && return 0
  say "fetching the arm64 libsentencepiece into .deps/arm64"
  mkdir -p "$deps/debs" "$deps/arm64"
  (cd "$deps/debs" && apt-get "${APT_ARM64[@]}" download libsentencepiece0 libsentencepiece-dev)
  for d in "$deps"/debs/libsentencepiece*_arm64.deb; do dpkg-deb -x "$d" "$deps/arm64"; done
  # The -dev symlink points into the same directory; make sure it resolves.
  test -e "$deps/arm64/usr/lib/aarch64-linux-gnu/libsentencepiece.so"
  touch "$deps/arm64/.done"
}

# The BPE tokenizer's libraries (tokenizer/bpe*.c): Oniguruma, utf8proc and
# jansson, unpacked beside libsentencepiece (cross/aarch64-linux.ini).
bpe_debs=(libonig5 libonig-dev libutf8proc2 libutf8proc-dev libjansson4 libjansson-dev)

arm64_bpe_sysroot() {
  [ -f "$deps/arm64/.bpe-done" ] && return 0
  say "fetching the arm64 Oniguruma, utf8proc and jansson into .deps/arm64"
  mkdir -p "$deps/debs" "$deps/arm64"
  (cd "$deps/debs" && apt-get "${APT_ARM64[@]}" download "${bpe_debs[@]}")
  for p in "${bpe_debs[@]}"; do dpkg-deb -x "$deps/debs/${p}"_*_arm64.deb "$deps/arm64"; done
  for l in onig utf8proc jansson; do test -e "$deps/arm64/usr/lib/aarch64-linux-gnu/lib$l.so"; done
  touch "$deps/arm64/.bpe-done"
}

# zlib (the tensors' CRC-32, runtime/model.c), beside them. zlib1g puts
# libz.so.1 in /lib and zlib1g-dev links libz.so to it by an absolute path:
# the library is copied beside the others (where the binaries' rpath finds
# it under qemu) and the link made relative. The static build takes the
# libz.a zlib1g-dev ships.
zlib_debs=(zlib1g zlib1g-dev)

arm64_zlib() {
  [ -f "$deps/arm64/.zlib-done" ] && [ -f "$deps/arm64-static/.zlib-done" ] && return 0
  say "fetching the arm64 zlib into .deps/arm64"
  mkdir -p "$deps/debs" "$deps/arm64" "$deps/arm64-static/lib" "$deps/arm64-static/include"
  (cd "$deps/debs" && apt-get "${APT_ARM64[@]}" download "${zlib_debs[@]}")
  for p in "${zlib_debs[@]}"; do dpkg-deb -x "$deps/debs/${p}"_*_arm64.deb "$deps/arm64"; done
  local lib=$deps/arm64/usr/lib/aarch64-linux-gnu so
  so=$(cd "$deps/arm64/lib/aarch64-linux-gnu" && ls libz.so.1.* | head -n 1)
  cp "$deps/arm64/lib/aarch64-linux-gnu/$so" "$lib/"
  ln -sf "$so" "$lib/libz.so.1"
  ln -sf "$so" "$lib/libz.so"
  test -e "$lib/libz.so" && test -e "$lib/libz.a" && test -e "$deps/arm64/usr/include/zlib.h"
  touch "$deps/arm64/.zlib-done"
  cp "$lib/libz.a" "$deps/arm64-static/lib/"
  cp "$deps/arm64/usr/include/zlib.h" "$deps/arm64/usr/include/zconf.h" "$deps/arm64-static/include/"
  touch "$deps/arm64-static/.zlib-done"
}

# The static build needs static libraries: Debian's -dev packages ship them
# for utf8proc and jansson, not for Oniguruma, which is built from Debian's
# source package as SentencePiece is (its configure options there only add
# a POSIX API that nibble does not use).
arm64_bpe_static() {
  [ -f "$deps/arm64-static/.bpe-done" ] && return 0
  say "building a static aarch64 Oniguruma from Debian's source package"
  local src lib=$deps/arm64/usr/lib/aarch64-linux-gnu inc=$deps/arm64/usr/include
  rm -rf "$deps/src-onig" && mkdir -p "$deps/src-onig"
  (cd "$deps/src-onig" && apt-get "${APT_ARM64[@]}" source --download-only libonig >/dev/null)
  (cd "$deps/src-onig" && dpkg-source -x libonig_*.dsc >/dev/null 2>&1)
  src=$(find "$deps/src-onig" -maxdepth 1 -type d -name 'libonig-*' | head -n 1)
  cmake -S "$src" -B "$src/build-static" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$src/build-static" -j"$(nproc)" onig >"$deps/onig-build.log" 2>&1 ||
    { tail -n 20 "$deps/onig-build.log" >&2; exit 1; }
  mkdir -p "$deps/arm64-static/lib" "$deps/arm64-static/include"
  cp "$src/build-static/libonig.a" "$lib/libutf8proc.a" "$lib/libjansson.a" "$deps/arm64-static/lib/"
  cp "$src/src/oniguruma.h" "$inc/utf8proc.h" "$inc/jansson.h" "$inc/jansson_config.h" \
    "$deps/arm64-static/include/"
  touch "$deps/arm64-static/.bpe-done"
}

arm64_static() {
  [ -f "$deps/arm64-static/.done" ] && return 0
  say "building a static aarch64 libsentencepiece from Debian's source package"
  rm -rf "$deps/src" && mkdir -p "$deps/src"
  (cd "$deps/src" && apt-get "${APT_ARM64[@]}" source --download-only sentencepiece >/dev/null)
  # Debian's patches make the header use std::string_view, as the shared
  # library's does; one of them drops the static target, which is undone.
  # (apt checked the files against the signed Sources index, so the .dsc's
  # own signature, which needs Debian's keyring, is not checked again.)
  (cd "$deps/src" && dpkg-source -x sentencepiece_*.dsc >/dev/null 2>&1)
  local src build
  src=$(find "$deps/src" -maxdepth 1 -type d -name 'sentencepiece-*' | head -n 1)
  patch -R -p1 -s -d "$src" < "$src/debian/patches/disable-static-library.patch"
  build=$src/build-static
  cmake -S "$src" -B "$build" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DSPM_USE_BUILTIN_PROTOBUF=ON \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
    -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$deps/arm64-static" >/dev/null
  make -C "$build" -j"$(nproc)" sentencepiece-static >"$deps/spm-build.log" 2>&1 ||
    { tail -n 20 "$deps/spm-build.log" >&2; exit 1; }
  mkdir -p "$deps/arm64-static/lib" "$deps/arm64-static/include"
  cp "$build/src/libsentencepiece.a" "$deps/arm64-static/lib/"
  cp "$src/src/sentencepiece_processor.h" "$deps/arm64-static/include/"
  touch "$deps/arm64-static/.done"
}

# libmicrohttpd (nibble serve), built as a static library from Debian's
# source package without TLS (nibble serves plain HTTP; Debian's build
# pulls in GnuTLS, which has no static form), into both sysroots: the
# shared cross build links it statically too.
arm64_mhd() {
  [ -f "$deps/arm64/.mhd-done" ] && [ -f "$deps/arm64-static/.mhd-done" ] && return 0
  say "building a static aarch64 libmicrohttpd from Debian's source package"
  local src lib=$deps/arm64/usr/lib/aarch64-linux-gnu
  rm -rf "$deps/src-mhd" && mkdir -p "$deps/src-mhd"
  (cd "$deps/src-mhd" && apt-get "${APT_ARM64[@]}" source --download-only libmicrohttpd >/dev/null)
  (cd "$deps/src-mhd" && dpkg-source -x libmicrohttpd_*.dsc >/dev/null 2>&1)
  src=$(find "$deps/src-mhd" -maxdepth 1 -type d -name 'libmicrohttpd-*' | head -n 1)
  (cd "$src" && ./configure --host=aarch64-linux-gnu --disable-shared --enable-static \
     --enable-https=no --disable-doc --disable-examples --disable-curl &&
   make -C src/microhttpd -j"$(nproc)") >"$deps/mhd-build.log" 2>&1 ||
    { tail -n 20 "$deps/mhd-build.log" >&2; exit 1; }
  mkdir -p "$lib" "$deps/arm64/usr/include" "$deps/arm64-static/lib" "$deps/arm64-static/include"
  cp "$src/src/microhttpd/.libs/libmicrohttpd.a" "$lib/"
  cp "$src/src/microhttpd/.libs/libmicrohttpd.a" "$deps/arm64-static/lib/"
  cp "$src/src/include/microhttpd.h" "$deps/arm64/usr/include/"
  cp "$src/src/include/microhttpd.h" "$deps/arm64-static/include/"
  touch "$deps/arm64/.mhd-done" "$deps/arm64-static/.mhd-done"
}

main() {
  install_missing "${native_pkgs[@]}"
  if [ "${1:-}" = --native ] || [ "$(uname -m)" = aarch64 ]; then
    return 0
  fi
  install_missing "${cross_pkgs[@]}" "${check_pkgs[@]}"
  arm64_apt_setup
  arm64_sysroot
  arm64_bpe_sysroot
  arm64_zlib
  arm64_static
  arm64_bpe_static
  arm64_mhd
}

# Sourced (tests/bench/icount.sh reuses the private apt state): functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
