#!/usr/bin/env bash
# Configure and build pgtandem.
#
#   scripts/build.sh [--build-dir DIR] [--type BUILD_TYPE] [--target T]... [CMAKE_ARGS...]
#
# Defaults: build/, RelWithDebInfo, all targets, JOBS=2 parallel jobs. Every other argument
# (e.g. -DPGTANDEM_IO_URING=ON, -DPGTANDEM_SANITIZE=ON) is passed to the cmake configure step.
# A relative DIR is taken from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
build_type=RelWithDebInfo
targets=()
cmake_args=()
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --type) build_type=$2; shift 2 ;;
    --target) targets+=(--target "$2"); shift 2 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) cmake_args+=("$1"); shift ;;
  esac
done

generator=()
# Ninja when available, but never switch the generator of an existing build dir.
if [[ ! -f $build_dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi

cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" "${cmake_args[@]}"
cmake --build "$build_dir" --parallel "${JOBS:-2}" "${targets[@]}"
