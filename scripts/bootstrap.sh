#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: system packages, local services, the pinned Python environment.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it only does what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[bootstrap] %s\n' "$*" >&2; }

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# a JDK for PySpark (the Spark engine of the partitioned gates; pyspark 4 needs Java 17+)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
if [ "${#need_apt[@]}" -gt 0 ] && [ "${AISEC_SKIP_APT:-0}" != 1 ]; then
  log "installing ${need_apt[*]} from Debian"
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  port_open 5432 && return 0
  log "starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main >/dev/null
  fi
  # trust auth on loopback, as the tests expect
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do port_open 5432 && return 0; sleep 1; done
  log "PostgreSQL did not start"; return 1
}

start_redis() {
  port_open 6379 && return 0
  log "starting Redis"
  command -v redis-server >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do port_open 6379 && return 0; sleep 1; done
  log "Redis did not start"; return 1
}

if [ "${AISEC_SERVICES:-1}" = 1 ]; then
  start_postgres
  start_redis
fi

if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  python3 -m pip install -q uv==0.13.8
fi
if [ ! -x .venv/bin/python ]; then
  uv venv -q .venv --python 3.11
fi
# sync is fast when nothing changed; it also removes anything not in the lock
# the CPU build of torch (models extra) is a local wheel on these machines; a registry would give a CUDA build
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
VIRTUAL_ENV="$ROOT/.venv" uv pip sync -q "${find_links[@]}" requirements.lock
VIRTUAL_ENV="$ROOT/.venv" uv pip install -q --no-deps -e .
# The build leaves airflow_aisec.egg-info in the checkout; with the checkout on sys.path (cwd, PYTHONPATH)
# it registers the plugin a second time and Airflow's task-side loader drops the plugins after it.
rm -rf "$ROOT/airflow_aisec.egg-info"
# Byte-compile what is installed, as pip would: with PYTHONDONTWRITEBYTECODE set (as on these machines)
# nothing ever writes .pyc files, so every process (each Airflow task, each `aisec` call) would compile
# Airflow and the libraries from source again (importing Airflow: ~8 s instead of ~3 s here). Done once
# per lock file; our own package is re-checked every time (cheap: only changed files compile).
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
stamp=".venv/.aisec-bytecode-$(sha256sum requirements.lock | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  log "byte-compiling the environment (once per lock file)"
  # some packages ship files that are not valid Python 3 (templates, test data): not an error
  .venv/bin/python -m compileall -q -j 0 "$site" >/dev/null 2>&1 || true
  touch "$stamp"
fi
.venv/bin/python -m compileall -q -j 0 "$ROOT/airflow_aisec" >/dev/null 2>&1 || true
log "environment ready: $ROOT/.venv"
