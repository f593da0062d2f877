#!/bin/bash
# t_docker.sh: the container image, built and run for real. The test starts
# a dockerd of its own (vfs storage, no iptables, no bridge, its own
# containerd, all state in a directory under /var/tmp that is removed at the
# end), so a system docker is never used or touched. No registry is needed:
# debian:12-slim is a stand-in made with debootstrap from the machine's apt
# mirror (cached in $XDRPROXY_DEBOOTSTRAP_TAR) and `docker import`. It builds
# docker/Dockerfile as it is, runs the image hardened (read-only root, no
# capabilities, no-new-privileges, uid 10001, config and key mounted
# read-only, host network) in front of the mock tenant, and checks a signed
# call, what the README and compose.yaml say, the build context and the
# image size. Set XDRPROXY_NO_DOCKER=1 to skip it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

BASE_TAR=${XDRPROXY_DEBOOTSTRAP_TAR:-/var/tmp/xdrproxy-debootstrap-bookworm.tar}
IMAGE=xdrproxy:t_docker
# The vfs storage driver copies every layer whole: the build peaks at ~3.6 GB.
NEED_MB=6000
MAX_IMAGE_MB=120

# The image builds xdrproxy from the sources itself: a sanitizer build of
# the tree adds nothing, and CI runs this once, in its -Werror build.
[ -n "${XDRPROXY_SANITIZED:-}" ] &&
    skip_all "runs once, in the build without sanitizers (the image builds its own xdrproxy)"
[ -n "${XDRPROXY_NO_DOCKER:-}" ] && skip_all "XDRPROXY_NO_DOCKER is set"
[ "$(id -u)" -eq 0 ] || skip_all "needs root to start a dockerd of its own"
for c in dockerd containerd docker debootstrap; do
	command -v "$c" >/dev/null ||
	    skip_all "$c not found: Debian's docker.io and debootstrap are needed (tests/deps.sh installs them)"
done

# dockerd panics without a cgroup file system (a chroot such as
# ../shared/tools/fresh-ci.sh makes has no /sys).
if [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
	skip_all "no cgroup file system at /sys/fs/cgroup: dockerd cannot run here (a chroot?)"
fi

# The machine's Debian mirror, as apt is configured (deb822 or one-line).
MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
[ -n "$MIRROR" ] ||
    MIRROR=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
curl -fsS --max-time 20 -o /dev/null "$MIRROR/dists/bookworm/Release" 2>/dev/null ||
    skip_all "the Debian archive $MIRROR cannot be reached (debootstrap and the image build need it)"

# ---- Where the key goes: docker/xdrproxy.conf, README, compose.yaml ----
# (checked first: no daemon needed)
KEY_PATH=$(sed -n 's/^key_file *= *//p' "$top_srcdir/docker/xdrproxy.conf")
expect_match "docker/xdrproxy.conf reads the key under /etc/xdrproxy/keys" \
    "$KEY_PATH" '^/etc/xdrproxy/keys/[^/]+$'
# key_mounts FILE: every /etc/xdrproxy/keys/... mount target in FILE.
key_mounts() {
	grep -o ':/etc/xdrproxy/keys/[^:" ]*:ro' "$1" | sed 's/^://; s/:ro$//' |
	    sort -u | tr '\n' ' '
}
sed -n '/^## Container/,/^## /p' "$top_srcdir/README.md" > "$T/readme-container"
expect_eq "the README mounts the key where docker/xdrproxy.conf reads it" \
    "$(key_mounts "$T/readme-container")" "$KEY_PATH "
expect_eq "compose.yaml mounts the key where docker/xdrproxy.conf reads it" \
    "$(key_mounts "$top_srcdir/docker/compose.yaml")" "$KEY_PATH "
expect_eq "the Dockerfile's comment mounts it there too" \
    "$(key_mounts "$top_srcdir/docker/Dockerfile")" "$KEY_PATH "
compose_yaml=$(cat "$top_srcdir/docker/compose.yaml")
for want in 'read_only: true' 'cap_drop: \[ALL\]' 'no-new-privileges:true' \
    'user: "10001:10001"' '"127\.0\.0\.1:8080:8080"' \
    ':/etc/xdrproxy/xdrproxy\.conf:ro'; do
	expect_match "compose.yaml: $want" "$compose_yaml" "$want"
done
if docker compose version > /dev/null 2>&1; then
	compose="docker compose"
elif command -v docker-compose > /dev/null; then
	compose=docker-compose
else
	compose=
	echo "# neither docker compose nor docker-compose: compose.yaml not validated"
fi
if [ -n "$compose" ]; then
	if out=$($compose -f "$top_srcdir/docker/compose.yaml" config -q 2>&1); then
		pass "$compose config accepts docker/compose.yaml"
	else
		fail "$compose config rejects docker/compose.yaml:"
		printf '%s\n' "$out" | sed 's/^/# /'
	fi
fi

DK=$(mktemp -d /var/tmp/xdrproxy-dockerd.XXXXXX)
avail=$(df -Pm "$DK" | awk 'NR == 2 { print $4 }')
if [ "${avail:-0}" -lt "$NEED_MB" ]; then
	rmdir "$DK"
	skip_all "needs $NEED_MB MB free in /var/tmp for dockerd's vfs storage, has ${avail:-0} MB"
fi
# A client of our own daemon only: no context, config or TLS from outside.
export DOCKER_HOST=unix://$DK/docker.sock DOCKER_CONFIG=$DK/client DOCKER_BUILDKIT=0
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
CTRD_PID=
DOCKERD_PID=
# containerd puts its shims' sockets in /run/containerd/s whatever its
# state directory; if the test made that directory, it removes it.
run_containerd=''
[ -d /run/containerd ] && run_containerd=1

# poll SECONDS CMD...: run CMD every 100 ms until it returns 0 (ready);
# 1 means not yet, any other status gives up at once.
poll() {
	local deadline=$(( $(date +%s) + $1 )) rc
	shift
	while :; do
		"$@" > /dev/null 2>&1
		rc=$?
		[ "$rc" -eq 0 ] && return 0
		[ "$rc" -ne 1 ] && return 1
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}
# alive PID CMD...: CMD's status, or 2 once PID has exited.
alive() {
	kill -0 "$1" 2>/dev/null || return 2
	shift
	"$@" || return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# slow CMD...: run CMD in the background and wait for it, so that a signal
# to the test is acted on at once, not when a build is over.
SLOW_PID=
slow() {
	"$@" &
	SLOW_PID=$!
	wait "$SLOW_PID"
	local rc=$?
	SLOW_PID=
	return $rc
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	poll "$2" gone "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# docker_teardown: stop dockerd (it stops its containers) and containerd,
# then remove all their state. dockerd leaves the host's network namespace
# bind-mounted in its exec-root: whatever is mounted under $DK is unmounted
# first, and rm never crosses a mount point.
docker_teardown() {
	local m
	[ -n "$SLOW_PID" ] && kill -TERM "$SLOW_PID" 2>/dev/null
	stop_pid "$DOCKERD_PID" 60
	stop_pid "$CTRD_PID" 30
	DOCKERD_PID=''
	CTRD_PID=''
	# A container shim left behind (dockerd killed): by its -address.
	for m in $(pgrep -f -- "-address $DK/containerd.sock"); do
		kill -KILL "$m" 2>/dev/null
	done
	[ -d "$DK" ] || return 0
	awk -v d="$DK/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
	    sort -r | while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$DK"
	[ -n "$run_containerd" ] || rmdir /run/containerd/s /run/containerd 2>/dev/null
}
trap 'docker_teardown; cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
docker_skip() { docker_teardown; skip_all "$@"; }

# ---- dockerd of our own ----
mkdir -p "$DK/client"
cat > "$DK/containerd.toml" <<EOF
version = 2
root = "$DK/containerd/root"
state = "$DK/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$DK/containerd.sock"
[ttrpc]
  address = "$DK/containerd.sock.ttrpc"
[debug]
  address = "$DK/containerd-debug.sock"
EOF
echo '{}' > "$DK/daemon.json"
containerd --config "$DK/containerd.toml" > "$T/containerd.log" 2>&1 < /dev/null &
CTRD_PID=$!
if ! poll 30 alive "$CTRD_PID" test -S "$DK/containerd.sock"; then
	tail -n 5 "$T/containerd.log" | sed 's/^/# /'
	docker_skip "containerd cannot start here (see above)"
fi
dockerd --config-file "$DK/daemon.json" --data-root "$DK/root" \
    --exec-root "$DK/exec" --pidfile "$DK/dockerd.pid" \
    -H "unix://$DK/docker.sock" --containerd "$DK/containerd.sock" \
    --storage-driver vfs --iptables=false --ip-masq=false --bridge none \
    > "$T/dockerd.log" 2>&1 < /dev/null &
DOCKERD_PID=$!
if ! poll 60 alive "$DOCKERD_PID" docker version; then
	grep -E '^panic:|level=(error|fatal)|^failed' "$T/dockerd.log" |
	    tail -n 3 | sed 's/^/# /'
	docker_skip "dockerd cannot start here, no privileges or cgroups? (see above)"
fi
echo "# dockerd $(docker version -f '{{.Server.Version}}') in $DK"

# ---- debian:12-slim, made with debootstrap, cached ----
# make_base: a minbase bookworm root with what debian:12-slim adds (its
# dpkg excludes and apt settings: no docs, man pages, locales, package
# caches), from the machine's mirror and with its debian.sources, as a
# tarball in $BASE_TAR.
make_base() {
	local r=$DK/rootfs
	echo "# debootstrap bookworm from $MIRROR into $BASE_TAR (once)"
	slow timeout 900 debootstrap --variant=minbase bookworm "$r" "$MIRROR" \
	    > "$T/debootstrap.log" 2>&1 || return 1
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$r/etc/apt/sources.list.d/" &&
		    rm -f "$r/etc/apt/sources.list"
	fi
	cat > "$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
	cat > "$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::Languages "none";' > "$r/etc/apt/apt.conf.d/docker-no-languages"
	printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	(
		cd "$r" || exit 1
		rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin \
		    var/lib/apt/lists/* usr/share/man/* usr/share/info/* \
		    usr/share/groff/* usr/share/lintian/overrides/* \
		    usr/share/linda/*
		find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
		find usr/share/doc -mindepth 1 -depth -type d -empty -delete
		find usr/share/locale -mindepth 1 -maxdepth 1 \
		    ! -name locale.alias -exec rm -rf {} +
	) || return 1
	tar --numeric-owner -C "$r" -cf "$BASE_TAR.$$" . &&
	    mv "$BASE_TAR.$$" "$BASE_TAR"
	local rc=$?
	rm -rf --one-file-system "$r" "$BASE_TAR.$$"
	return $rc
}
t0=$(date +%s)
if [ ! -s "$BASE_TAR" ] && ! make_base; then
	tail -n 5 "$T/debootstrap.log" | sed 's/^/# /'
	docker_skip "debootstrap bookworm from $MIRROR failed (see above)"
fi
docker import -c 'CMD ["bash"]' "$BASE_TAR" debian:12-slim > /dev/null ||
    { fail "docker import $BASE_TAR"; finish; }
echo "# base image ready in $(( $(date +%s) - t0 )) s"
if ! out=$(docker run --rm --network none debian:12-slim true 2>&1); then
	echo "# $out"
	docker_skip "dockerd runs here but cannot run a container (see above)"
fi

# ---- The build context: only what the Dockerfile needs ----
# A tree with the real .dockerignore, the files the Dockerfile copies, and
# what must never reach the daemon.
ctx=$DK/context
mkdir -p "$ctx"
cp "$top_srcdir/.dockerignore" "$ctx/"
wanted="Makefile.am README.md build-aux/.gitkeep configure.ac etc/xdrproxy.conf.example
m4/.gitkeep src/main.c tests/fuzz/fuzz_config.c tests/lib.sh tests/test_sign.c"
unwanted=".git/config acme.key tenant.key docker/tenant.key demo/api.key demo/ca.pem
build/src/xdrproxy build-werror/Makefile bench/out/x configure config.status
Makefile aclocal.m4 autom4te.cache/x m4/libtool.m4 build-aux/ltmain.sh
src/main.o src/xdrproxy src/.deps/main.Po tests/mocktenant tests/test_sign
tests/fuzz/fuzz_filter tests/t_basic.log tests/pki/ca.key etc/tls/server.pem perf.data"
for f in $wanted $unwanted; do
	mkdir -p "$ctx/$(dirname "$f")" && echo x > "$ctx/$f"
done
printf 'FROM debian:12-slim\nCOPY . /context\n' > "$DK/Dockerfile.context"
if docker build -q --network none -f "$DK/Dockerfile.context" \
    -t xdrproxy-context:t_docker "$ctx" > "$T/context-build.log" 2>&1; then
	got=$(docker run --rm --network none xdrproxy-context:t_docker \
	    find /context -type f -printf '%P\n' | sort | tr '\n' ' ')
	# shellcheck disable=SC2086
	want=$(printf '%s\n' $wanted | sort | tr '\n' ' ')
	expect_eq ".dockerignore: the build context holds only the sources" \
	    "$got" "$want"
	docker rmi -f xdrproxy-context:t_docker > /dev/null
else
	fail "build of the context probe:"; sed 's/^/# /' "$T/context-build.log"
fi

# ---- The image, from docker/Dockerfile as it is ----
t0=$(date +%s)
if ! slow timeout 1200 docker build --network host -f "$top_srcdir/docker/Dockerfile" \
    -t "$IMAGE" "$top_srcdir" > "$T/build.log" 2>&1; then
	fail "docker build -f docker/Dockerfile:"
	tail -n 30 "$T/build.log" | sed 's/^/# /'
	finish
fi
pass "docker/Dockerfile builds"
echo "# image built in $(( $(date +%s) - t0 )) s; $(grep -m 1 'Sending build context' "$T/build.log")"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base=$(docker image inspect -f '{{.Size}}' debian:12-slim)
mb=$(( (size + 500000) / 1000000 ))
echo "# image size: $mb MB (debian:12-slim stand-in: $(( (base + 500000) / 1000000 )) MB)"
if [ "$mb" -le "$MAX_IMAGE_MB" ]; then pass "image size $mb MB is at most $MAX_IMAGE_MB MB"
else fail "image size $mb MB is over $MAX_IMAGE_MB MB"; fi
expect_eq "the image's USER is xdrproxy" \
    "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" xdrproxy

# ---- Run it hardened in front of the mock tenant ----
make_pki
start_mock
# docker/xdrproxy.conf with the mock's name and key id, a port picked at
# run time on the host's loopback, and the test CA.
sed -e 's/^listen .*/listen   = 127.0.0.1:0/' \
    -e "s/^fqdn .*/fqdn     = $FQDN/" \
    -e "s/^key_id .*/key_id   = $KEY_ID/" \
    "$top_srcdir/docker/xdrproxy.conf" > "$T/docker.conf"
printf 'ca_file  = /etc/xdrproxy/ca.pem\nconnect_to = 127.0.0.1:%s\n' \
    "$MOCK_PORT" >> "$T/docker.conf"
# The key as the README says: owned by uid 10001, mode 600.
install -m 600 -o 10001 -g 10001 "$T/api.key" "$T/docker.key"
install -m 600 "$T/api.key" "$T/root.key"

# run_proxy KEYFILE [docker run options] -- [xdrproxy arguments]
run_proxy() {
	local key=$1
	shift
	local opts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	docker run --network host --read-only --cap-drop ALL \
	    --security-opt no-new-privileges --user 10001:10001 \
	    -v "$T/docker.conf:/etc/xdrproxy/xdrproxy.conf:ro" \
	    -v "$key:$KEY_PATH:ro" -v "$CA:/etc/xdrproxy/ca.pem:ro" \
	    "${opts[@]}" "$IMAGE" "$@"
}

out=$(run_proxy "$T/root.key" --rm -- -t -c /etc/xdrproxy/xdrproxy.conf 2>&1)
expect_eq "a root-owned 600 key: -t fails in the container" "$?" 1
expect_match "  because uid 10001 cannot read it" "$out" "$KEY_PATH: Permission denied"
out=$(run_proxy "$T/docker.key" --rm -- -t -c /etc/xdrproxy/xdrproxy.conf 2>&1)
expect_eq "a key owned by 10001, mode 600: -t passes" "$?" 0
expect_match "  and says so" "$out" 'configuration OK'

CTR=xdrproxy-t_docker
run_proxy "$T/docker.key" -d --name "$CTR" > /dev/null ||
    { fail "docker run -d"; finish; }
container_log() { docker logs "$CTR" > "$T/container.log" 2>&1; }
proxy_up() {
	container_log
	grep -q ': xdrproxy [0-9.]* running' "$T/container.log" && return 0
	[ "$(docker inspect -f '{{.State.Running}}' "$CTR")" = true ] || return 2
	return 1
}
if ! poll 30 proxy_up; then
	fail "xdrproxy did not start in the container:"
	sed 's/^/# /' "$T/container.log"
	finish
fi
PROXY_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' \
    "$T/container.log" | head -n 1)
URL=http://127.0.0.1:$PROXY_PORT

# What the kernel says about the process inside.
pid=$(docker inspect -f '{{.State.Pid}}' "$CTR")
st=$(cat "/proc/$pid/status")
expect_match "runs as uid 10001" "$st" $'Uid:\t10001\t10001\t10001\t10001'
expect_match "runs as gid 10001" "$st" $'Gid:\t10001\t10001\t10001\t10001'
expect_match "no effective capabilities" "$st" $'CapEff:\t0000000000000000'
expect_match "no capabilities in the bounding set" "$st" $'CapBnd:\t0000000000000000'
expect_match "no new privileges" "$st" $'NoNewPrivs:\t1'
mnt=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")
expect_match "root file system read-only" "$mnt" '^ro(,|$)'
for m in /etc/xdrproxy/xdrproxy.conf "$KEY_PATH" /etc/xdrproxy/ca.pem; do
	expect_match "$m mounted read-only" \
	    "$(awk -v m="$m" '$5 == m { print $6 }' "/proc/$pid/mountinfo")" '^ro(,|$)'
done

# The README's check and call, through the container.
out=$(docker exec "$CTR" xdrproxy -t 2>&1)
expect_eq "docker exec xdrproxy xdrproxy -t" "$?" 0
expect_match "  checks the mounted configuration" "$out" \
    '^/etc/xdrproxy/xdrproxy.conf: configuration OK'

code=$(curl -sS --max-time 30 -o "$T/out" -w '%{http_code}' -X POST \
    "$URL/public_api/v1/incidents/get_incidents/" \
    -H 'Content-Type: application/json' -d '{"request_data":{}}')
expect_eq "get_incidents through the container: 200" "$code" 200
expect_match "the tenant's reply reaches the client" "$(cat "$T/out")" \
    '^\{"reply":\{"total_count":2,.*"incidents":\['
rec=$(grep '"event":"request"' "$MOCK_LOG" | tail -n 1)
expect_eq "the tenant accepted the signature" "$(json_str "$rec" auth)" ok
expect_eq "x-xdr-auth-id is the key id" "$(json_str "$rec" auth_id)" "$KEY_ID"
nonce=$(json_str "$rec" nonce)
ts=$(json_str "$rec" timestamp)
authz=$(printf '%s' "$rec" | sed -n 's/.*\["Authorization","\([^"]*\)"\].*/\1/p')
expect_eq "Authorization is sha256(key + nonce + timestamp)" "$authz" \
    "$(printf '%s' "$API_KEY$nonce$ts" | sha256sum | cut -d' ' -f1)"
expect_match "nonce is 64 characters of [A-Za-z0-9]" "$nonce" '^[A-Za-z0-9]{64}$'
expect_match "Host is api-<fqdn>" "$rec" "\[\"Host\",\"$API_HOST\"\]"
expect_eq "the tenant got the body" "$(json_num "$rec" body_len)" 19

# SIGTERM from docker stop: a clean exit, and the audit record on stdout.
docker stop -t 30 "$CTR" > /dev/null
expect_eq "xdrproxy exits 0 on docker stop" \
    "$(docker inspect -f '{{.State.ExitCode}}' "$CTR")" 0
a=$(docker logs "$CTR" 2> /dev/null | grep '^{"type":"response",' | tail -n 1)
expect_match "audit record on the container's stdout" "$a" \
    '"tenant":"tenant","key_id":"42","client":"127\.0\.0\.1:[0-9]+","method":"POST","path":"/public_api/v1/incidents/get_incidents/","query":"","status":200,"bytes_in":19,.*"outcome":"ok","error":null,"caller":'
container_log
expect_no_match "the key is not in the container's output" \
    "$(cat "$T/container.log")" "$API_KEY"
docker rm "$CTR" > /dev/null

echo "# dockerd storage at the end: $(du -sm "$DK" | cut -f1) MB"
finish
