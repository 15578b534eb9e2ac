#!/usr/bin/env bash
# Install the system (Debian/Ubuntu) packages that the C++ runners in cpp/ need to
# build and test, and only those that are missing. Idempotent: with everything
# present it changes nothing and needs no root. Says what it does on stderr.
#
#   cmake (>= 3.25), g++, make   the toolchain (g++ brings libasan/libubsan for -DLIF_SANITIZE=ON)
#   npm, tar                     fetch the pinned ONNX Runtime headers (cpp/cmake/OrtHeaders.cmake)
#   nlohmann-json3-dev           the JSON library the manifest reader uses
#
# libtorch and libonnxruntime come from the Python environment, not from here.
set -euo pipefail

log() { echo "install_system_deps: $*" >&2; }

missing=()
need_command() {  # COMMAND PACKAGE
    if command -v "$1" >/dev/null 2>&1; then
        log "$1: found at $(command -v "$1")"
    else
        log "$1: missing (Debian package $2)"
        missing+=("$2")
    fi
}
need_command cmake cmake
need_command c++ g++
need_command make make
need_command tar tar
need_command npm npm

# The C format's tests (tests/test_c_backend.py): host compilers, and the cross targets with their
# C libraries (static glibc for aarch64 under qemu-aarch64, newlib for the Cortex-M4F under
# qemu-system-arm's MPS2 AN386 board).
need_command gcc gcc
need_command clang clang
need_command aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need_command qemu-aarch64 qemu-user
need_command arm-none-eabi-gcc gcc-arm-none-eabi
need_command qemu-system-arm qemu-system-arm
need_file() {  # FILE PACKAGE
    if [ -f "$1" ]; then
        log "$1: found"
    else
        log "$1: missing (Debian package $2)"
        missing+=("$2")
    fi
}
need_file /usr/aarch64-linux-gnu/lib/libc.a libc6-dev-arm64-cross
need_file /usr/lib/arm-none-eabi/newlib/libc_nano.a libnewlib-arm-none-eabi

nlohmann=""
for dir in /usr/include /usr/local/include; do
    if [ -f "$dir/nlohmann/json.hpp" ]; then nlohmann="$dir/nlohmann/json.hpp"; break; fi
done
if [ -n "$nlohmann" ]; then
    log "nlohmann/json.hpp: found at $nlohmann"
else
    log "nlohmann/json.hpp: missing (Debian package nlohmann-json3-dev)"
    missing+=(nlohmann-json3-dev)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "no apt-get here: install ${missing[*]} (or their equivalents) with your package manager"
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            log "not root and no sudo: run as root, or install ${missing[*]} yourself"
            exit 1
        fi
    fi
    log "installing ${missing[*]} with apt-get"
    $SUDO apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >&2
    log "installed ${missing[*]}"
else
    log "nothing to install"
fi

# CMake 3.25 is what cpp/CMakeLists.txt requires (Debian 12 ships 3.25.1).
version="$(cmake --version | head -1 | sed 's/[^0-9.]*\([0-9.]*\).*/\1/')"
if [ "$(printf '%s\n%s\n' 3.25 "$version" | sort -V | head -1)" != "3.25" ]; then
    log "warning: cmake $version is older than the 3.25 that cpp/CMakeLists.txt requires"
fi
