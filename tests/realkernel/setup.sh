#!/bin/sh
# Prepare a Debian 12 (bookworm) x86-64 machine for the real-kernel oracle:
# QEMU (TCG is enough), static busybox, the Debian cloud kernel + its DWARF, drgn.
# Idempotent: re-running only checks what is already there.  Must run as root.
#
#   KREL=6.1.0-56-cloud-amd64 DRGN_VERSION=0.3.0 sh tests/realkernel/setup.sh
#
# Kernels of other Debian suites (PRIVATE_KERNELS, "SUITE:RELEASE ...", default bullseye's 5.10
# and sid's 7.2) are fetched through an apt configuration private to this script (its own
# sources list, lists and cache under KROOT/apt): the machine's sources are not changed and
# nothing is installed into the system. Their packages are unpacked with dpkg-deb -x into
# KROOT/RELEASE (boot.py --root KROOT/RELEASE, the -dbg vmlinux under
# KROOT/RELEASE/usr/lib/debug/boot/). PRIVATE_KERNELS= (empty) skips them.
set -eu

KREL="${KREL:-6.1.0-56-cloud-amd64}"
DRGN_VERSION="${DRGN_VERSION:-0.3.0}"
PRIVATE_KERNELS="${PRIVATE_KERNELS-bullseye:5.10.0-32-cloud-amd64 sid:7.2.13+deb14-cloud-amd64}"
KROOT="${KROOT:-/var/tmp/vmemdbg-kernels}"
# the Debian archive this machine's own apt uses (first URIs: of its deb822 sources, else the
# first deb line of sources.list); MIRROR= overrides it
MIRROR="${MIRROR:-$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}"
MIRROR="${MIRROR:-$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null)}"
PKGS="qemu-system-x86 busybox-static cpio binutils crash gdb python3 python3-pip e2fsprogs \
linux-image-${KREL} linux-image-${KREL}-dbg"

die() { echo "setup.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Lock::Timeout makes apt wait for another running apt/dpkg instead of failing.
    apt-get -o DPkg::Lock::Timeout=1800 update \
        || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=1800 install -y --no-install-recommends $missing \
        || die "apt-get install failed (old kernel ABIs leave the mirror: see README.md)"
else
    echo "setup.sh: apt packages already installed"
fi

VMLINUX=""
for v in "/usr/lib/debug/boot/vmlinux-${KREL}" "/usr/lib/debug/lib/modules/${KREL}/vmlinux"; do
    [ -f "$v" ] && { VMLINUX="$v"; break; }
done
[ -n "$VMLINUX" ] || die "no debug vmlinux for ${KREL} under /usr/lib/debug"
[ -f "/boot/vmlinuz-${KREL}" ] || die "/boot/vmlinuz-${KREL} missing"
modinfo -k "$KREL" -n qemu_fw_cfg >/dev/null 2>&1 || die "module qemu_fw_cfg missing for ${KREL}"

if python3 -c "import drgn, sys; sys.exit(drgn.__version__ != '${DRGN_VERSION}')" 2>/dev/null; then
    echo "setup.sh: drgn ${DRGN_VERSION} already installed"
else
    # Debian's system python is "externally managed" (PEP 668); fall back to
    # --break-system-packages only when plain pip refuses.
    python3 -m pip install "drgn==${DRGN_VERSION}" \
        || python3 -m pip install --break-system-packages "drgn==${DRGN_VERSION}" \
        || die "pip install drgn==${DRGN_VERSION} failed"
fi
# boot.py and make_fixtures.py import vmemdbg from the repository: its dependencies too
python3 -m pip install -q pyelftools numpy \
    || python3 -m pip install -q --break-system-packages pyelftools numpy \
    || die "pip install pyelftools numpy failed"
# ---- kernels of other suites, through a private apt configuration ------------------------------
private_apt() {  # apt-get|apt-cache ARGS...
    tool=$1; shift
    "$tool" -o Dir::Etc::sourcelist="$KROOT/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::lists="$KROOT/apt/lists" -o Dir::State::status=/dev/null \
        -o Dir::Cache="$KROOT/apt/cache" -o APT::Architecture=amd64 -o Acquire::Languages=none "$@"
}

fetch_kernel() {  # SUITE RELEASE
    suite=$1 rel=$2 root="$KROOT/$2"
    # 7.x images are split: linux-binary-unsigned- (vmlinuz), linux-modules-, linux-base-;
    # before, linux-image-REL-unsigned held all of it. The -dbg package has vmlinux + System.map.
    if private_apt apt-cache show "linux-binary-unsigned-$rel" >/dev/null 2>&1; then
        pkgs="linux-binary-unsigned-$rel linux-modules-$rel linux-base-$rel linux-image-$rel-dbg"
    else
        pkgs="linux-image-$rel-unsigned linux-image-$rel-dbg"
    fi
    mkdir -p "$KROOT/debs" "$root"
    chown _apt "$KROOT/debs" 2>/dev/null || true
    echo "setup.sh: $suite: downloading $pkgs"
    # shellcheck disable=SC2086
    (cd "$KROOT/debs" && private_apt apt-get download $pkgs) \
        || die "apt-get download $pkgs from $suite failed (the exact apt error is above)"
    for p in $pkgs; do
        dpkg-deb -x "$(ls "$KROOT/debs/${p}_"*.deb | tail -1)" "$root" || die "dpkg-deb -x $p failed"
    done
    # merged-/usr packages (7.x) keep modules under usr/lib; depmod -b looks under ROOT/lib
    [ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
    depmod -b "$root" "$rel" || die "depmod for $rel failed"
    touch "$root/.complete"
}

pending=""
for sk in $PRIVATE_KERNELS; do
    [ -f "$KROOT/${sk#*:}/.complete" ] || pending="$pending $sk"
done
for sk in $PRIVATE_KERNELS; do
    [ -f "$KROOT/${sk#*:}/.complete" ] && echo "setup.sh: ${sk#*:} already unpacked in $KROOT/${sk#*:}"
done
if [ -n "$pending" ]; then
    [ -n "$MIRROR" ] || die "no Debian archive URI in this machine's apt sources: set MIRROR=URI"
    mkdir -p "$KROOT/apt/lists/partial" "$KROOT/apt/cache/archives/partial"
    : > "$KROOT/apt/sources.list"
    for sk in $PRIVATE_KERNELS; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR ${sk%%:*} main" \
            >> "$KROOT/apt/sources.list"
    done
    private_apt apt-get update >/dev/null || die "apt-get update with $KROOT/apt/sources.list failed"
    for sk in $pending; do
        fetch_kernel "${sk%%:*}" "${sk#*:}"
    done
fi

python3 -c "import drgn; print('setup.sh: drgn', drgn.__version__)"
echo "setup.sh: kernel /boot/vmlinuz-${KREL}"
echo "setup.sh: vmlinux ${VMLINUX}"
echo "setup.sh: ok"
