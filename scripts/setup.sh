#!/usr/bin/env bash
# Installs everything backbone and its tests need on a fresh Debian machine:
#   - PostgreSQL 15 and Redis 7 (+ redis-sentinel, etcd) from Debian's packages, and nftables
#     (the local partition drills cut members off from each other with it)
#   - Patroni, pinned in scripts/patroni/requirements.txt, into its own virtualenv under /opt/backbone
#   - TimescaleDB 2.28.3 for PostgreSQL 15, built from source (see below)
#   - the Apache Kafka broker jars, resolved with Maven into a cache outside the repo
#   - the Pulumi CLI, its Kubernetes provider, kube-apiserver and kube-controller-manager, built
#     with Go from the Go module proxy into a cache outside the repo (scripts/tools/build.sh)
#   - a repo-local virtualenv (.venv) with backbone and its dev extras
# Safe to re-run: each step is skipped when its result is already there.
# Usage: scripts/setup.sh [all|dev|python]
#   python: only the virtualenv with what running backbone needs (`make demo`, the bootstrap tier)
#   dev:    the virtualenv with the dev extras too (Pulumi, kubernetes, pytest...: the tests)
#   all:    the services, then the dev virtualenv (`make test`)
# Off a terminal (CI logs, a piped make) each long step says every $BACKBONE_PROGRESS_S
# seconds (default 15) that it is still running, with the last line of its log.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
case "$what" in all|dev|python) ;; *) echo "usage: $0 [all|dev|python]" >&2; exit 2 ;; esac

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if [ "$what" = all ]; then
apt_install "Debian packages" postgresql-15 redis-server redis-sentinel etcd-server etcd-client nftables python3-venv
# The packages start system-wide services; backbone runs its own on free ports instead.
for svc in postgresql redis-server redis-sentinel etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    as_root systemctl stop "$svc" || true
  fi
done

# Patroni runs as the postgres user, so it lives where that user can read it, on the system
# python (not a pyenv under /root). Not Debian's 3.0.2: a paused primary that resumed there
# overwrote the new leader's key and the writes the promoted replica acknowledged were lost.
patroni_version=$(sed -n 's/^patroni\[.*\]==\(.*\)$/\1/p' scripts/patroni/requirements.txt)
patroni_home="/opt/backbone/patroni-${patroni_version}"
if [ ! -x "$patroni_home/bin/patroni" ] || ! cmp -s scripts/patroni/requirements.txt "$patroni_home/requirements.txt"; then
  say "installing Patroni ${patroni_version} into ${patroni_home}"
  log=$(mktemp)
  # the copied requirements file is written last: it marks a finished install (a venv cannot be moved)
  install_patroni() {
    as_root rm -rf "$patroni_home" \
      && as_root /usr/bin/python3 -m venv "$patroni_home" \
      && as_root "$patroni_home/bin/pip" install --no-deps -r scripts/patroni/requirements.txt \
      && as_root cp scripts/patroni/requirements.txt "$patroni_home/requirements.txt"
  }
  logged "$log" install_patroni || failed "$log" "Patroni install"
  rm -f "$log"
fi

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
kafka_libs="${BACKBONE_KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/backbone/kafka-${kafka_version}/libs}"
if ! ls "$kafka_libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
  say "resolving Apache Kafka ${kafka_version} jars with Maven into $kafka_libs"
  command -v mvn >/dev/null || apt_install "Maven" maven
  tmp_libs="${kafka_libs}.partial"
  rm -rf "$tmp_libs"
  log=$(mktemp)
  logged "$log" mvn -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp_libs" || failed "$log" "Maven"
  rm -f "$log"
  mkdir -p "$(dirname "$kafka_libs")"
  rm -rf "$kafka_libs" && mv "$tmp_libs" "$kafka_libs"
fi

# TimescaleDB for PostgreSQL 15, built from source (no registry this project uses carries
# it): BACKBONE_TIMESCALEDB_SOURCE, else the vendored tarball beside the checkout, with the
# patches in scripts/timescaledb/ (each says why). Skipped when the extension is already
# installed at this version.
timescaledb_version=2.28.3
pg_config=/usr/lib/postgresql/15/bin/pg_config   # from postgresql-server-dev-15
if [ ! -f "/usr/share/postgresql/15/extension/timescaledb--${timescaledb_version}.sql" ] \
   || [ ! -f "/usr/lib/postgresql/15/lib/timescaledb-${timescaledb_version}.so" ]; then
  source_tarball="${BACKBONE_TIMESCALEDB_SOURCE:-$(cd .. && pwd)/shared/vendor/timescaledb-${timescaledb_version}.tar.gz}"
  if [ ! -f "$source_tarball" ]; then
    cat >&2 <<EOT
error: TimescaleDB ${timescaledb_version} for PostgreSQL 15 is not installed, and no source was found.
  Either set BACKBONE_TIMESCALEDB_SOURCE to the timescaledb-${timescaledb_version} source tarball,
  or place it at ../shared/vendor/timescaledb-${timescaledb_version}.tar.gz beside this checkout,
  or install the package timescaledb-2-postgresql-15 (${timescaledb_version}) from Timescale's own apt repository.
  (looked for: ${source_tarball})
EOT
    exit 2
  fi
  apt_install "TimescaleDB build dependencies" postgresql-server-dev-15 cmake gcc make libssl-dev libkrb5-dev patch
  say "building TimescaleDB ${timescaledb_version} for PostgreSQL 15 from ${source_tarball}"
  build_dir=$(mktemp -d)
  patches="$(pwd)/scripts/timescaledb"
  log="$build_dir/build.log"
  build_timescaledb() (
    tar xzf "$source_tarball" -C "$build_dir" \
      && cd "$build_dir/timescaledb-${timescaledb_version}" \
      && for p in "$patches"/*.patch; do patch -p1 --forward <"$p" || exit 1; done \
      && ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
           -DGENERATE_DOWNGRADE_SCRIPT=OFF -DPG_CONFIG="$pg_config" \
      && make -C build -j"$(nproc)" \
      && as_root make -C build install
  )
  logged "$log" build_timescaledb || failed "$log" "TimescaleDB build"
  rm -rf "$build_dir"
fi

# The real-engine deploy tests' tools (tests/deploy): the Pulumi CLI, the Kubernetes provider
# plugin, kube-apiserver and kube-controller-manager, built from the Go module proxy and cached
# by version outside the repo (30-50 minutes cold on 2 cores, nothing when cached).
bash scripts/tools/build.sh all
fi  # all

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
# Each install leaves a stamp newer than pyproject.toml; the dev install holds the runtime one.
dev_stamp=.venv/.backbone-installed runtime_stamp=.venv/.backbone-installed-runtime
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ] && [ ! scripts/constraints/infra.txt -nt "$1" ]; }
constraints=()
if [ "$what" = python ]; then
  spec=. stamp=$runtime_stamp label="backbone (what running it needs)"
  fresh "$dev_stamp" && stamp=$dev_stamp
else
  # the Pulumi SDKs and everything they import at exact versions (they must match the plugins)
  spec='.[dev]' stamp=$dev_stamp label="backbone with dev extras" constraints=(-c scripts/constraints/infra.txt)
fi
if ! fresh "$stamp"; then
  say "installing ${label} into .venv"
  log=.venv/pip-install.log
  pip_install() { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e "$spec" "${constraints[@]}"; }
  logged "$log" pip_install || failed "$log" "pip install"
  touch "$stamp"
fi
say "setup complete"
