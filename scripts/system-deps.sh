#!/usr/bin/env bash
# System packages the tests use for real servers, from Debian's archive: PostgreSQL (the SQL store's production
# backend), Prometheus Alertmanager (a real sender for the webhook end-to-end test) and Prometheus itself (the
# metrics source the telemetry tests read, backfilled with promtool).
# Idempotent and never fatal: where apt is unavailable the tests that need a package skip and say why.
set -uo pipefail
want=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || want+=(postgresql)
command -v prometheus-alertmanager >/dev/null || want+=(prometheus-alertmanager)
command -v prometheus >/dev/null && command -v promtool >/dev/null || want+=(prometheus)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: not root or no apt-get; tests needing ${want[*]} will be skipped" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}"; } >/dev/null 2>&1 \
  || echo "system-deps: apt-get install ${want[*]} failed; tests needing them will be skipped" >&2
exit 0
