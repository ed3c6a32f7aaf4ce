#!/usr/bin/env bash
# PostgreSQL server binaries for the tests of the relayer's PostgreSQL queue store: tests/support/postgres.py starts
# a throwaway server from them in a temporary directory. The build machines have them (/usr/lib/postgresql/15/bin).
# On a Debian/Ubuntu machine without them, root installs them from Debian's registry; anywhere else this says how
# to get one and the tests skip (CI sets OG_SETTLE_REQUIRE_POSTGRES=1, which makes that skip a failure).
set -uo pipefail
have_server() {
  [ -n "${OG_SETTLE_TEST_POSTGRES_URL:-}" ] && return 0
  [ -n "${OG_SETTLE_PG_BIN:-}" ] && [ -x "${OG_SETTLE_PG_BIN}/initdb" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  command -v initdb >/dev/null
}
have_server && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "og-settle: installing PostgreSQL server binaries (apt-get) for the queue store tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  for package in postgresql-15 postgresql; do
    apt-get install -y -q --no-install-recommends "$package" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$package" >/dev/null; } \
      && break
  done
  have_server && exit 0
fi
echo "og-settle: note: no PostgreSQL server binaries found; the PostgreSQL store tests will skip." \
  "Install PostgreSQL (apt-get install postgresql-15), or set OG_SETTLE_PG_BIN or OG_SETTLE_TEST_POSTGRES_URL." >&2
exit 0
