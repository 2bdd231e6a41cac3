#!/usr/bin/env bash
# Run the server-backed tests (pytest -m servers) against real servers on 127.0.0.1:
# PostgreSQL from the Debian packages (installed with apt-get when missing and possible)
# in a throwaway cluster, and a Chroma server (`chroma run`, shipped with chromadb).
#
#   bash .ci/servers.sh            # uses .venv/bin/python, else python3
#   PYTHON=/path/to/python bash .ci/servers.sh [extra pytest arguments]
#
# It exports AGENTMEM_TEST_DATABASE_URL and AGENTMEM_TEST_CHROMA_URL for the tests, and
# stops both servers and removes their data on exit. When the servers cannot be installed
# or started here (no root, no apt, no network to the package mirror), it says so and
# exits 0: the default test run does not need them.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'servers.sh: %s\n' "$*" >&2; }
give_up() { say "SKIPPED: $*"; say "the server-backed tests did not run"; exit 0; }

if [ -n "${PYTHON:-}" ]; then :
elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
else PYTHON=python3
fi
"$PYTHON" -c "import agentmem, pytest" 2>/dev/null \
  || give_up "$PYTHON cannot import agentmem and pytest (install with: pip install -e '.[test]')"

# -- psycopg, the PostgreSQL driver (not a default dependency) ----------------------------
if ! "$PYTHON" -c "import psycopg" 2>/dev/null; then
  say "installing psycopg"
  "$PYTHON" -m pip install --quiet 'psycopg[binary]>=3.1' || give_up "cannot install psycopg"
fi

# -- PostgreSQL ---------------------------------------------------------------------------
find_bindir() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  [ -z "$initdb" ] && initdb=$(command -v initdb || true)
  [ -n "$initdb" ] && dirname "$initdb"
  return 0
}
BINDIR=$(find_bindir)
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing PostgreSQL from the Debian packages"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1; then
      give_up "apt-get could not install postgresql"
    fi
    BINDIR=$(find_bindir)
  fi
  [ -n "$BINDIR" ] || give_up "PostgreSQL is not installed and cannot be (needs root and apt-get)"
fi

WORK=$(mktemp -d /tmp/agentmem-servers.XXXXXX)
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then  # initdb refuses root; the Debian package made a postgres user
  id postgres >/dev/null 2>&1 || give_up "running as root but there is no postgres user"
  chown postgres "$WORK"
  RUN_AS=(runuser -u postgres --)
fi
CHROMA_PID=""
cleanup() {
  if [ -n "$CHROMA_PID" ]; then kill "$CHROMA_PID" 2>/dev/null || true; wait "$CHROMA_PID" 2>/dev/null || true; fi
  if [ -f "$WORK/pg/PG_VERSION" ]; then
    "${RUN_AS[@]}" "$BINDIR/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PG_PORT=$(free_port)
"${RUN_AS[@]}" "$BINDIR/initdb" -D "$WORK/pg" -A trust -U postgres -E UTF8 --locale=C --no-sync \
  >"$WORK/initdb.log" 2>&1 || { tail -n 20 "$WORK/initdb.log" >&2; give_up "initdb failed"; }
"${RUN_AS[@]}" "$BINDIR/pg_ctl" -D "$WORK/pg" -l "$WORK/postgres.log" -w -t 60 \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
  || { tail -n 20 "$WORK/postgres.log" >&2; give_up "PostgreSQL did not start"; }
say "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"

# -- Chroma -------------------------------------------------------------------------------
CHROMA="$(cd "$(dirname "$PYTHON")" && pwd)/chroma"  # absolute: the server starts elsewhere
[ -x "$CHROMA" ] || CHROMA=$(command -v chroma || true)
[ -n "$CHROMA" ] || give_up "the chroma CLI (shipped with chromadb) is not installed"
CHROMA_PORT=$(free_port)
mkdir -p "$WORK/chroma"
(cd "$WORK/chroma" && exec "$CHROMA" run --path "$WORK/chroma/data" --host 127.0.0.1 --port "$CHROMA_PORT") \
  >"$WORK/chroma.log" 2>&1 &
CHROMA_PID=$!
chroma_ready() {
  "$PYTHON" - "$CHROMA_PORT" 2>/dev/null <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
opener.open(f"http://127.0.0.1:{sys.argv[1]}/api/v2/heartbeat", timeout=1)
PY
}
ready=0
for _ in $(seq 1 300); do
  if chroma_ready; then ready=1; break; fi
  kill -0 "$CHROMA_PID" 2>/dev/null || break
  sleep 0.2
done
[ "$ready" -eq 1 ] || { tail -n 20 "$WORK/chroma.log" >&2; give_up "the Chroma server did not start"; }
say "Chroma on 127.0.0.1:$CHROMA_PORT"

# -- the tests ----------------------------------------------------------------------------
export AGENTMEM_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export AGENTMEM_TEST_CHROMA_URL="http://127.0.0.1:$CHROMA_PORT"
say "AGENTMEM_TEST_DATABASE_URL=$AGENTMEM_TEST_DATABASE_URL"
say "AGENTMEM_TEST_CHROMA_URL=$AGENTMEM_TEST_CHROMA_URL"
set +e
HF_HUB_OFFLINE=1 "$PYTHON" -m pytest -m servers -p no:cacheprovider "$@"
status=$?
set -e
exit "$status"
