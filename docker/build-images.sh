#!/usr/bin/env bash
# Build Gantry's local container images without any registry, from Debian packages.
#
#   docker/build-images.sh [--force] [--python X.Y] [--node N] [busybox|debian|registry|postgres|all ...]
#
#   busybox  gantry/busybox:latest   FROM scratch + Debian's busybox-static (seconds)
#   debian   gantry/debian:bookworm  debootstrap minbase + bash git curl python3
#                                    python3-pip python3-venv ca-certificates, imported with
#                                    `docker import` (~2 min)
#            --python X.Y / --node N build a variant instead, from the Debian suite whose
#                                    python3 / nodejs has that version: python 3.9 bullseye,
#                                    3.11 bookworm, 3.13 trixie; node 12 bullseye, 18
#                                    bookworm, 20 trixie. Tagged gantry/debian:<suite>
#                                    (python) or gantry/debian:<suite>-node<N> (with nodejs
#                                    and npm). Both options together must name one suite.
#   registry gantry/registry:latest  FROM scratch + Debian's libc6 and docker-registry
#                                    (distribution 2.8) packages: a local registry on :5000
#                                    for example pipelines (seconds)
#   postgres gantry/postgres:15      gantry/debian:bookworm + Debian's postgresql-15 and the
#                                    packages it needs (apt-get download on the host, dpkg -i
#                                    in a classic build); entrypoint like the official image
#                                    (POSTGRES_USER/PASSWORD/DB), pg_isready health check
#   all      busybox and debian (the default; registry and postgres only when named)
#
# Idempotent: an image that already exists is skipped unless --force is given.
# Needs: docker, apt-get + dpkg-deb (busybox), debootstrap (installed with apt-get when
# missing; needs root) and a reachable Debian package mirror (GANTRY_DEBIAN_MIRROR,
# default http://deb.debian.org/debian). No Docker registry is contacted.
set -euo pipefail

BUSYBOX_IMAGE=gantry/busybox:latest
DEBIAN_IMAGE=gantry/debian:bookworm
REGISTRY_IMAGE=gantry/registry:latest
POSTGRES_IMAGE=gantry/postgres:15
DEBIAN_SUITE=${GANTRY_DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${GANTRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

force=0
targets=()
want_python=
want_node=
expect=
for arg in "$@"; do
    if [ -n "$expect" ]; then
        case "$expect" in python) want_python=$arg ;; node) want_node=$arg ;; esac
        expect=
        continue
    fi
    case "$arg" in
        --force|-f) force=1 ;;
        --python) expect=python ;;
        --python=*) want_python=${arg#--python=} ;;
        --node) expect=node ;;
        --node=*) want_node=${arg#--node=} ;;
        busybox|debian|registry|postgres) targets+=("$arg") ;;
        all) targets+=(busybox debian) ;;
        -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images: unknown image or option '$arg' (expected busybox, debian, registry, postgres, all, --force, --python X.Y, --node N)" >&2; exit 2 ;;
    esac
done
[ -n "$expect" ] && { echo "build-images: --$expect needs a version" >&2; exit 2; }
[ ${#targets[@]} -eq 0 ] && targets=(busybox debian)

# The Debian suite whose python3 / nodejs package has the requested version.
python_suite() {
    case "$1" in 3.9) echo bullseye ;; 3.11) echo bookworm ;; 3.13) echo trixie ;; *) return 1 ;; esac
}
node_suite() {
    case "${1%%.*}" in 12) echo bullseye ;; 18) echo bookworm ;; 20) echo trixie ;; *) return 1 ;; esac
}
DEBIAN_EXTRA=
if [ -n "$want_python$want_node" ]; then
    suite_p= suite_n=
    if [ -n "$want_python" ]; then
        suite_p=$(python_suite "$want_python") || {
            echo "build-images: no Debian suite has python $want_python as python3 (3.9 bullseye, 3.11 bookworm, 3.13 trixie)" >&2; exit 2; }
    fi
    if [ -n "$want_node" ]; then
        suite_n=$(node_suite "$want_node") || {
            echo "build-images: no Debian suite has nodejs $want_node (12 bullseye, 18 bookworm, 20 trixie)" >&2; exit 2; }
        DEBIAN_EXTRA=",nodejs,npm"
    fi
    if [ -n "$suite_p" ] && [ -n "$suite_n" ] && [ "$suite_p" != "$suite_n" ]; then
        echo "build-images: python $want_python is in $suite_p but nodejs $want_node in $suite_n; build two images" >&2; exit 2
    fi
    DEBIAN_SUITE=${suite_p:-$suite_n}
    DEBIAN_IMAGE=gantry/debian:$DEBIAN_SUITE${want_node:+-node${want_node%%.*}}
fi

say() { echo "build-images: $*" >&2; }
die() { say "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? permissions on /var/run/docker.sock?)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "'$*' needs root (run as root or install sudo)"; fi
}

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/gantry-images.XXXXXX")
cleanup() { as_root rm -rf "$WORK" 2>/dev/null || rm -rf "$WORK" 2>/dev/null || true; }
trap cleanup EXIT

build_busybox() {
    local start=$SECONDS ctx="$WORK/busybox" deb
    say "building $BUSYBOX_IMAGE from Debian's busybox-static package"
    command -v apt-get >/dev/null || die "apt-get not found (a Debian-based host is needed to fetch busybox-static)"
    mkdir -p "$ctx/dl" "$ctx/pkg" "$ctx/rootfs"
    if ! (cd "$ctx/dl" && apt-get download busybox-static >/dev/null 2>"$ctx/apt.err"); then
        say "apt-get download failed; refreshing package lists (apt-get update)"
        as_root apt-get update -qq >/dev/null
        (cd "$ctx/dl" && apt-get download busybox-static >/dev/null) \
            || die "apt-get download busybox-static failed: $(cat "$ctx/apt.err")"
    fi
    deb=$(ls "$ctx"/dl/busybox-static_*.deb)
    dpkg-deb -x "$deb" "$ctx/pkg"
    local root="$ctx/rootfs"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,proc,sys,dev,github/home,__w}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    install -m 0755 "$ctx/pkg/bin/busybox" "$root/bin/busybox"
    # One symlink per applet, at the path busybox itself reports (like `busybox --install -s`).
    local applet
    while read -r applet; do
        [ -z "$applet" ] && continue
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sf /bin/busybox "$root/$applet"
    done < <("$root/bin/busybox" --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    echo "gantry busybox image ($(basename "$deb"))" >"$root/etc/gantry-image"
    if [ -f "$SCRIPT_DIR/busybox/Dockerfile" ]; then
        cp "$SCRIPT_DIR/busybox/Dockerfile" "$ctx/Dockerfile"
    else
        printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
    fi
    rm -rf "$ctx/dl" "$ctx/pkg"
    # The classic builder handles FROM scratch + COPY offline and needs no buildx plugin.
    DOCKER_BUILDKIT=0 docker build -q --label dev.gantry.image=busybox -t "$BUSYBOX_IMAGE" "$ctx" >/dev/null 2>"$ctx/build.err" \
        || die "docker build failed: $(cat "$ctx/build.err")"
    say "built $BUSYBOX_IMAGE in $((SECONDS - start))s"
}

build_debian() {
    local start=$SECONDS dir="$WORK/debian-rootfs"
    say "building $DEBIAN_IMAGE with debootstrap ($DEBIAN_SUITE from $DEBIAN_MIRROR; about a minute)"
    if ! command -v debootstrap >/dev/null; then
        say "debootstrap is missing; installing it with apt-get"
        as_root apt-get install -y -qq debootstrap >/dev/null 2>&1 || {
            as_root apt-get update -qq >/dev/null
            as_root apt-get install -y -qq debootstrap >/dev/null
        } || die "could not install debootstrap"
    fi
    as_root debootstrap --variant=minbase --include=bash,git,curl,python3,python3-pip,python3-venv,ca-certificates$DEBIAN_EXTRA \
        "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || die "debootstrap failed; last lines of its log:
$(tail -n 20 "$WORK/debootstrap.log")"
    # Slim it down and make it friendly to bind-mounted workspaces owned by another uid.
    as_root sh -c "rm -rf '$dir'/var/cache/apt/archives/*.deb '$dir'/var/lib/apt/lists/* '$dir'/var/log/*.log \
        && mkdir -p '$dir/github/home' '$dir/__w' \
        && printf '[safe]\n\tdirectory = *\n' > '$dir/etc/gitconfig'"
    as_root tar -C "$dir" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --change 'LABEL dev.gantry.image=debian' \
        - "$DEBIAN_IMAGE" >/dev/null || die "docker import failed"
    say "built $DEBIAN_IMAGE in $((SECONDS - start))s"
}

# Downloads Debian packages into $1 (apt-get download; refreshes the lists once if needed).
download_debs() {
    local dir=$1; shift
    mkdir -p "$dir"
    if ! (cd "$dir" && apt-get download "$@" >/dev/null 2>"$dir/apt.err"); then
        say "apt-get download failed; refreshing package lists (apt-get update)"
        as_root apt-get update -qq >/dev/null
        (cd "$dir" && apt-get download "$@" >/dev/null 2>"$dir/apt.err") \
            || die "apt-get download $* failed: $(cat "$dir/apt.err")"
    fi
}

build_registry() {
    local start=$SECONDS ctx="$WORK/registry" deb
    say "building $REGISTRY_IMAGE from Debian's docker-registry and libc6 packages"
    command -v apt-get >/dev/null || die "apt-get not found (a Debian-based host is needed to fetch docker-registry)"
    download_debs "$ctx/dl" docker-registry libc6
    mkdir -p "$ctx/rootfs"
    for deb in "$ctx"/dl/libc6_*.deb "$ctx"/dl/docker-registry_*.deb; do
        dpkg-deb -x "$deb" "$ctx/rootfs"
    done
    local root="$ctx/rootfs"
    # Only the binary, the C library and the config are needed.
    rm -rf "$root/usr/share" "$root/etc/init.d" "$root/lib/systemd" "$root/usr/lib/x86_64-linux-gnu/gconv" \
        "$root/usr/lib/x86_64-linux-gnu/audit" "$root/etc/ld.so.conf.d"
    [ -x "$root/usr/bin/docker-registry" ] || die "the docker-registry package has no /usr/bin/docker-registry"
    mkdir -p "$root/etc/docker/registry" "$root/var/lib/registry" "$root/tmp"
    chmod 1777 "$root/tmp"
    cp "$SCRIPT_DIR/registry/config.yml" "$root/etc/docker/registry/config.yml"
    printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
    echo "gantry registry image ($(cd "$ctx/dl" && ls docker-registry_*.deb))" >"$root/etc/gantry-image"
    cp "$SCRIPT_DIR/registry/Dockerfile" "$ctx/Dockerfile"
    rm -rf "$ctx/dl"
    DOCKER_BUILDKIT=0 docker build -q --label dev.gantry.image=registry -t "$REGISTRY_IMAGE" "$ctx" >/dev/null 2>"$ctx/build.err" \
        || die "docker build failed: $(cat "$ctx/build.err")"
    say "built $REGISTRY_IMAGE in $((SECONDS - start))s"
}

build_postgres() {
    local start=$SECONDS ctx="$WORK/postgres" status="$WORK/postgres-dpkg-status" pkgs
    image_exists "$DEBIAN_IMAGE" || build_debian
    say "building $POSTGRES_IMAGE from $DEBIAN_IMAGE and Debian's postgresql-15 package"
    command -v apt-get >/dev/null || die "apt-get not found (a Debian-based host is needed to fetch postgresql-15)"
    # The packages to add are what apt would install into the base image: resolve against the
    # image's own dpkg status, then fetch exactly those .debs on the host.
    docker run --rm --label dev.gantry.image=postgres-build "$DEBIAN_IMAGE" cat /var/lib/dpkg/status >"$status" \
        || die "cannot read the dpkg status of $DEBIAN_IMAGE"
    resolve() {
        apt-get -s -o Dir::State::status="$status" install --no-install-recommends postgresql-15 2>"$WORK/apt-s.err" \
            | awk '$1 == "Inst" { print $2 }'
    }
    pkgs=$(resolve)
    if [ -z "$pkgs" ]; then
        say "cannot resolve postgresql-15; refreshing package lists (apt-get update)"
        as_root apt-get update -qq >/dev/null
        pkgs=$(resolve)
        [ -n "$pkgs" ] || die "apt-get cannot resolve postgresql-15 for $DEBIAN_IMAGE: $(cat "$WORK/apt-s.err")"
    fi
    # shellcheck disable=SC2086 # one package name per word
    download_debs "$ctx/debs" $pkgs
    rm -f "$ctx/debs/apt.err"
    cp "$SCRIPT_DIR/postgres/Dockerfile" "$SCRIPT_DIR/postgres/docker-entrypoint.sh" "$ctx/"
    DOCKER_BUILDKIT=0 docker build -q --label dev.gantry.image=postgres -t "$POSTGRES_IMAGE" "$ctx" >/dev/null 2>"$ctx/build.err" \
        || die "docker build failed: $(tail -n 30 "$ctx/build.err")"
    say "built $POSTGRES_IMAGE in $((SECONDS - start))s ($(echo "$pkgs" | wc -w) packages)"
}

for t in "${targets[@]}"; do
    case "$t" in
        busybox) img=$BUSYBOX_IMAGE ;;
        debian) img=$DEBIAN_IMAGE ;;
        registry) img=$REGISTRY_IMAGE ;;
        postgres) img=$POSTGRES_IMAGE ;;
    esac
    if [ "$force" -eq 0 ] && image_exists "$img"; then
        say "$img already exists (use --force to rebuild)"
        continue
    fi
    "build_$t"
done
