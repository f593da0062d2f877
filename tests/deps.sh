#!/bin/sh
# tests/deps.sh: install what xdrproxy needs to build, test and run its demo
# on Debian 12, with apt-get, only if something is missing. Runs as root or
# through sudo; never asks questions.
set -eu

# nghttp2-server: nghttpd, an HTTP/2 tenant for tests/t_http2.sh (the
# mock tenant speaks HTTP/1.1 only).
# nodejs, chromium: tests/t_browser.sh runs Node's fetch (which must pass)
# and a cross-origin page in headless Chromium (which must be refused).
# clang, libclang-rt-14-dev: libFuzzer and its sanitizer runtimes for
# tests/fuzz.sh (./configure CC=clang --enable-fuzz).
# netcat-openbsd: nc -N, a client that half-closes (shutdown(SHUT_WR))
# after its request, for tests/t_edges.sh.
# logrotate: t_audit.sh runs etc/logrotate.d/xdrproxy for real.
# socat: the service manager's notify socket in tests/t_notify.sh.
# mandoc: tests/t_man.sh lints the man pages (mandoc -T lint).
# strace: tests/t_keys.sh kills xdrproxy-keys at each step of a write
# (fault injection) to show a crash leaves the old store or the new.
# libp11-kit-dev: p11-kit parses key_pkcs11's RFC 7512 URIs and loads
# PKCS#11 modules (src/pkcs11.c); softhsm2: the software token that
# tests/t_pkcs11.sh keeps the key on.
# tinyproxy: a real forward proxy (CONNECT) for tests/t_egress.sh.
# python3-prometheus-client: a real Prometheus exposition parser for
# tests/t_metrics.sh (run with /usr/bin/python3).
# docker.io, debootstrap: tests/t_docker.sh runs a dockerd of its own and
# makes its debian:12-slim from the Debian archive; apparmor (a Recommends
# of docker.io) lets it load its container profile where the kernel has
# AppArmor; docker-compose checks docker/compose.yaml. On a machine with
# systemd, Debian also starts its own docker service; the test never uses it.
# systemd: systemd-analyze verify/security on etc/systemd/ in
# tests/t_systemd.sh (works offline, without systemd running).
# libjson-c-dev: a real JSON parser for the untrusted lines that
# xdrproxy-audit(1) verifies; zlib1g-dev: it reads rotated .gz files.
# rsyslog: a real rsyslogd (imtcp, its own config) for tests/t_syslog.sh.
# passwd: useradd, for the test user of tests/t_priv.sh.
# libhiredis-dev: the Redis client (with its libevent adapter) of the
# governor's fleet budget (src/fleet.c); redis-server: the Redis that
# tests/t_fleet.sh starts, stops and restarts.
PACKAGES="gcc make autoconf automake libtool pkg-config
clang libclang-rt-14-dev
libevent-dev libcurl4-openssl-dev libssl-dev libinih-dev libp11-kit-dev
libjson-c-dev zlib1g-dev libhiredis-dev
curl openssl ca-certificates gzip procps nghttp2-server nodejs chromium
netcat-openbsd logrotate socat mandoc strace tinyproxy python3-prometheus-client
docker.io debootstrap apparmor docker-compose systemd passwd softhsm2 rsyslog
redis-server"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
	    grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run as root, or install sudo" >&2
	exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
