#!/usr/bin/env bash
# A Docker-compatible container runtime for the serving-image smoke test, offline, on podman.
#
#   scripts/container-runtime.sh up         install + configure podman, build the local base image,
#                                           start the API service; prints `export ...` lines to eval
#   scripts/container-runtime.sh down       stop the service that `up` started (nothing else)
#   scripts/container-runtime.sh clean      `down`, then remove the work folder (images included)
#   scripts/container-runtime.sh status     say whether that service runs (exit 0) or not (exit 1)
#   scripts/container-runtime.sh env        print the `export ...` lines without starting anything
#   scripts/container-runtime.sh mirror [C] print the Debian mirror of release C (default: this
#                                           machine's) that the base image is built from
#   scripts/container-runtime.sh netstate   print the host's network state (links, addresses, network
#                                           namespaces, firewall rules, forwarding sysctls)
#
# Why podman: no Docker daemon runs on the project's machines and no image registry is reachable,
# but Debian's podman serves the Docker API on a unix socket, so the SDK's LocalModel.build_cpr_model
# (the `docker` CLI) and deploy_to_local_endpoint (docker-py) run unchanged against it.
#
# Everything lives in one git-ignored work folder (LEADSCORE_CONTAINERS_DIR, default ./.containers):
# the podman configuration, image storage, the service's socket, pid and log. `up` is idempotent:
# packages, configuration, base image and service are each made only when missing or outdated.
# It changes no host interface, firewall rule or sysctl, and checks that before it returns.
#
# Exit codes: 0 done; 1 failed; 3 this machine cannot host the runtime (not Linux, not Debian 12,
# not root, no podman package, no docker CLI): the reason is printed, and callers (make smoke-image,
# .ci/run) skip, never silently.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${LEADSCORE_CONTAINERS_DIR:-$ROOT/.containers}"
APT_DIR="${LEADSCORE_APT_DIR:-/etc/apt}"  # overridable for tests of the mirror lookup
BASE_IMAGE="${LEADSCORE_BASE_IMAGE:-localhost/leadscore-base:bookworm}"
SOCK="$WORK/podman.sock"
PIDFILE="$WORK/podman.pid"
EXIT_UNSUPPORTED=3

PACKAGES=(podman runc slirp4netns debootstrap debian-archive-keyring iptables)
# The base image: a minimal Debian with Python; the CPR Dockerfile pip-installs everything else.
BASE_INCLUDE="python3,python3-venv,python-is-python3,ca-certificates"
# Bumped when the base image recipe below changes, so `up` rebuilds an outdated image.
BASE_RECIPE=1

say() { echo "container-runtime: $*" >&2; }
die() { say "error: $*"; exit 1; }
unsupported() { say "cannot set up podman on this machine: $*"; exit "$EXIT_UNSUPPORTED"; }

podman_env() {
    export CONTAINERS_CONF="$WORK/containers.conf"
    export CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
}

print_env() {
    echo "export DOCKER_HOST=unix://$SOCK"
    echo "export LEADSCORE_BASE_IMAGE=$BASE_IMAGE"
    echo "export NO_GCE_CHECK=true"
}

check_machine() {
    [[ "$(uname -s)" == Linux ]] || unsupported "not Linux ($(uname -s))"
    [[ -r /etc/os-release ]] || unsupported "no /etc/os-release; not Debian"
    local id version
    id="$(. /etc/os-release && echo "${ID:-}")"
    version="$(. /etc/os-release && echo "${VERSION_ID:-}")"
    [[ "$id" == debian && "$version" == 12 ]] || unsupported "not Debian 12 (found ${id:-?} ${version:-?})"
    [[ "$(id -u)" == 0 ]] || unsupported "not running as root (podman's rootful storage and apt-get need it)"
    # LocalModel.build_cpr_model shells out to the docker CLI, which talks to podman's socket.
    command -v docker >/dev/null || unsupported "no docker CLI on PATH (LocalModel.build_cpr_model runs it)"
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    ((${#missing[@]} == 0)) && return
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p "$WORK"
    # No recommends: buildah, fuse-overlayfs, uidmap... are for rootless use; this runs as root.
    apt-get update -qq >"$WORK/apt.log" 2>&1 || die "apt-get update failed; see $WORK/apt.log"
    apt-cache show podman >/dev/null 2>&1 || unsupported "no podman package in this machine's apt sources"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1 \
        || die "apt-get install failed; see $WORK/apt.log"
}

# The host's network state, normalised so that only configuration shows (no packet counters or
# timestamps). Compared before and after: the runtime must leave the host's network untouched.
netstate() {
    echo "## ip -o link"
    ip -o link | sed -E 's/ +/ /g'
    echo "## ip -o addr"
    ip -o addr | sed -E 's/ +/ /g; s/ valid_lft.*//'
    echo "## network namespaces"
    ls /run/netns 2>/dev/null || true
    echo "## iptables-save"
    iptables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//g' || true
    echo "## ip6tables-save"
    ip6tables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//g' || true
    echo "## sysctls"
    for key in net/ipv4/ip_forward net/ipv4/conf/all/forwarding net/ipv6/conf/all/forwarding \
        net/ipv4/conf/all/route_localnet net/ipv4/ip_unprivileged_port_start; do
        [[ -r "/proc/sys/$key" ]] && echo "$key=$(cat "/proc/sys/$key")"
    done
    return 0
}

# The Debian mirror of this machine, read from its apt sources (deb822 .sources files and
# one-line .list files): the first enabled `deb` source whose suites include the release itself.
debian_mirror() {
    local codename="$1" file
    shopt -s nullglob
    for file in "$APT_DIR"/sources.list.d/*.sources; do
        awk -v codename="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " codename " ") && enabled != "no" && uri != "") {
                    print uri; found = 1; exit
                }
                types = suites = uri = enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:" { $1 = ""; types = substr($0, 2) }
            tolower($1) == "suites:" { $1 = ""; suites = substr($0, 2) }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }
        ' "$file"
    done
    for file in "$APT_DIR"/sources.list "$APT_DIR"/sources.list.d/*.list; do
        [[ -r "$file" ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -E 's/#.*//; s/\[[^]]*\]//' "$file" | awk -v codename="$codename" '$1 == "deb" && $3 == codename { print $2 }'
    done
}

write_config() {
    # Runtime state (runroot, tmp_dir) must not outlive a reboot, as it would on a tmpfs; the work
    # folder is on disk, so it is cleared when the boot id changes.
    local boot_id
    boot_id="$(cat /proc/sys/kernel/random/boot_id)"
    if [[ -d "$WORK/run" && "$(cat "$WORK/run/boot_id" 2>/dev/null)" != "$boot_id" ]]; then
        rm -rf "$WORK/run"
    fi
    mkdir -p "$WORK"/{storage,run,tmp,net.d}
    echo "$boot_id" >"$WORK/run/boot_id"
    # The root defaults of podman's ulimits exceed what these machines allow; runc because crun
    # fails on their mixed cgroup v1/v2 hierarchy; file events because there is no journald.
    cat >"$WORK/containers.conf.new" <<EOF
# Written by scripts/container-runtime.sh; rewritten on every \`up\`.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Never podman's bridge: it adds interfaces and firewall rules on the host.
netns = "slirp4netns"

[network]
network_config_dir = "$WORK/net.d"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
image_copy_tmp_dir = "$WORK/tmp"
tmp_dir = "$WORK/run/libpod"
EOF
    cat >"$WORK/storage.conf.new" <<EOF
# Written by scripts/container-runtime.sh; rewritten on every \`up\`.
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run/storage"
EOF
    mv "$WORK/containers.conf.new" "$WORK/containers.conf"
    mv "$WORK/storage.conf.new" "$WORK/storage.conf"
}

# What the base image is made of; its hash labels the image, so a change triggers a rebuild.
base_key() {
    local codename="$1"
    {
        echo "recipe=$BASE_RECIPE codename=$codename include=$BASE_INCLUDE"
        shopt -s nullglob
        cat /usr/local/share/ca-certificates/*.crt
    } | sha256sum | cut -c1-16
}

build_base_image() {
    local codename key current mirror rootfs started
    codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"
    key="$(base_key "$codename")"
    current="$(podman image inspect --format '{{ index .Labels "leadscore.base.key" }}' "$BASE_IMAGE" 2>/dev/null || true)"
    if [[ "$current" == "$key" ]]; then
        say "base image $BASE_IMAGE is up to date"
        return
    fi
    mirror="$(debian_mirror "$codename" | head -n 1)"
    [[ -n "$mirror" ]] || die "no Debian mirror for $codename in $APT_DIR/sources.list{,.d/*}"
    say "building $BASE_IMAGE with debootstrap from $mirror (about a minute)"
    started=$SECONDS
    rootfs="$WORK/base-rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$BASE_INCLUDE" "$codename" "$rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed; see $WORK/debootstrap.log"
    # Outbound HTTPS may be intercepted by a proxy whose CA the host trusts: the image's pip must too.
    shopt -s nullglob
    local certs=(/usr/local/share/ca-certificates/*.crt)
    ((${#certs[@]})) && cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >>"$WORK/debootstrap.log" 2>&1
    # Debian's python refuses `pip install` outside a venv (PEP 668); the CPR Dockerfile runs plain
    # `pip`, so a venv goes first on PATH.
    chroot "$rootfs" python3 -m venv /opt/venv
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    local bundle=/etc/ssl/certs/ca-certificates.crt
    tar -C "$rootfs" -c . | podman import --quiet \
        --change "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV VIRTUAL_ENV=/opt/venv" \
        --change "ENV SSL_CERT_FILE=$bundle" --change "ENV REQUESTS_CA_BUNDLE=$bundle" \
        --change "ENV PIP_CERT=$bundle" --change "ENV PIP_DISABLE_PIP_VERSION_CHECK=1" \
        --change "LABEL leadscore.base.key=$key" \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "built $BASE_IMAGE in $((SECONDS - started)) s"
}

service_pid() {
    # The pid of the service this script started, if it still runs; nothing else ever counts.
    [[ -r "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "system service .*unix://$SOCK" || return 1
    echo "$pid"
}

start_service() {
    if service_pid >/dev/null; then
        say "podman service already running (pid $(service_pid)) on $SOCK"
        return
    fi
    rm -f "$SOCK"
    setsid podman system service --time=0 "unix://$SOCK" </dev/null >"$WORK/podman.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if [[ -S "$SOCK" ]] && podman --url "unix://$SOCK" version >/dev/null 2>&1; then
            say "podman service (pid $(cat "$PIDFILE")) listening on $SOCK"
            return
        fi
        service_pid >/dev/null || die "podman service exited; see $WORK/podman.log"
        sleep 0.1
    done
    die "podman service did not answer on $SOCK within 10 s; see $WORK/podman.log"
}

stop_service() {
    local pid
    if ! pid="$(service_pid)"; then
        say "no podman service started by this script is running"
        rm -f "$PIDFILE"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
        [[ -e "/proc/$pid" ]] || break
        sleep 0.1
    done
    [[ -e "/proc/$pid" ]] && kill -KILL "$pid"
    rm -f "$PIDFILE" "$SOCK"
    say "stopped podman service (pid $pid)"
}

# containers/storage bind-mounts its overlay folder onto itself and leaves it mounted; undo that
# when no container's filesystem is mounted below it, so the host's mount table is as before.
release_storage_mount() {
    local overlay="$WORK/storage/overlay"
    mountpoint -q "$overlay" 2>/dev/null || return 0
    if findmnt -rn -o TARGET | grep -q "^$overlay/"; then
        say "containers still mounted below $overlay; left it mounted"
        return 0
    fi
    umount "$overlay"
}

# Everything `up` made in the work folder goes: the service, the storage mount, images, logs.
clean() {
    stop_service
    release_storage_mount
    if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
        die "something is still mounted below $WORK (a running container?); not removing it"
    fi
    rm -rf "$WORK"
    say "removed $WORK"
}

up() {
    check_machine
    # A unix socket path holds at most 107 bytes.
    ((${#SOCK} < 100)) || die "$SOCK is too long for a unix socket; set LEADSCORE_CONTAINERS_DIR to a shorter folder"
    install_packages
    local before after
    before="$(netstate)"
    write_config
    podman_env
    build_base_image
    start_service
    after="$(netstate)"
    if [[ "$before" != "$after" ]]; then
        diff <(echo "$before") <(echo "$after") >&2 || true
        die "the host's network state changed (see the diff above)"
    fi
    say "host network unchanged (links, addresses, iptables, forwarding sysctls)"
    print_env
}

case "${1:-}" in
    up) up ;;
    down) stop_service && release_storage_mount ;;
    clean) clean ;;
    status)
        if pid="$(service_pid)"; then say "running (pid $pid) on $SOCK"; else say "not running"; exit 1; fi ;;
    env) print_env ;;
    mirror) debian_mirror "${2:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}" | head -n 1 ;;
    netstate) netstate ;;
    *)
        echo "usage: $0 up|down|clean|status|env|mirror|netstate" >&2
        exit 2 ;;
esac
