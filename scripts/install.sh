#!/usr/bin/env bash
# One-command, idempotent set-up of reconphys_ros in a virtual environment inside the repository (.venv):
#   1. create .venv (Python 3.10+; 3.11 recommended),
#   2. pip install requirements.txt (ROS 2 Kilted wheels, pinned CPU torch, ...) when it changed,
#   3. build the custom messages (msg/*.msg) with rosidl + CMake and install them into .venv when they changed,
#   4. pip install -e . (console scripts) when setup.py changed.
# Needs only Python and pip (plus gcc, cmake and make for the message build: Debian's build-essential, cmake).
# A second run finds every stamp up to date and changes nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECONPHYS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMPS="$VENV/.reconphys-stamps"
log() { printf '[install] %s\n' "$*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

for tool in make g++; do
  command -v "$tool" >/dev/null || { log "missing '$tool': install it (Debian: apt-get install -y build-essential)"; exit 1; }
done

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
export PATH="$VENV/bin:$PATH"
if ! command -v cmake >/dev/null; then
  log "no cmake on PATH: installing it from PyPI into the venv"
  "${PIP[@]}" install cmake
fi

req_hash=$(hash_of "$ROOT/requirements.txt")
if ! stamp_ok requirements "$req_hash"; then
  log "installing Python dependencies (requirements.txt; first run takes ~1-2 min)"
  "${PIP[@]}" install -r "$ROOT/requirements.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  stamp_set requirements "$req_hash"
  rm -f "$STAMPS/messages"  # new ROS wheels: rebuild the messages against them
fi

# The ROS wheels' CMake export files carry the include paths of the machine they were built on; point them here.
py_inc=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_inc=$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")
if grep -lq "/opt/python/cp311-cp311" "$VENV"/share/*/cmake/*.cmake 2>/dev/null; then
  log "rewriting baked include paths in the ROS wheels' CMake files"
  grep -l "/opt/python/cp311-cp311" "$VENV"/share/*/cmake/*.cmake | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g"
fi

msg_hash=$(hash_of "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml")
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if ! stamp_ok messages "$msg_hash" || [ ! -d "$site/reconphys_ros/msg" ]; then
  log "building custom messages with rosidl (~30 s)"
  build="$ROOT/build/msgs"
  rm -rf "$build"; mkdir -p "$build"
  (
    cd "$build"
    export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake "$ROOT" -DCMAKE_INSTALL_PREFIX="$VENV" -DRECONPHYS_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release > "$build/cmake.log" 2>&1 \
      || { tail -30 "$build/cmake.log" >&2; exit 1; }
    make -j"$(nproc)" > "$build/make.log" 2>&1 || { tail -30 "$build/make.log" >&2; exit 1; }
    make install > "$build/install.log" 2>&1 || { tail -30 "$build/install.log" >&2; exit 1; }
  )
  # The generated Python lives in site-packages/reconphys_ros/{msg,*.so}; our sources live in the repository.
  # Both directories form one package through pkgutil.extend_path (see reconphys_ros/__init__.py).
  cp "$ROOT/reconphys_ros/__init__.py" "$site/reconphys_ros/__init__.py"
  rm -rf "$site"/reconphys_ros-*.egg-info
  stamp_set messages "$msg_hash"
fi

setup_hash=$(hash_of "$ROOT/setup.py")
if ! stamp_ok editable "$setup_hash"; then
  log "installing reconphys_ros (editable) and its console scripts"
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat \
    2> >(grep -v "is ignored: it is neither" >&2)
  stamp_set editable "$setup_hash"
fi

"$VENV/bin/python" -c "from reconphys_ros.msg import GaussianAsset, PhysicsParams, GripperCommand, SimStatus" \
  || { log "message import check failed"; exit 1; }
log "ready: $VENV"
