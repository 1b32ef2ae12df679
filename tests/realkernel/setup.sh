#!/bin/sh
# Prepare a Debian 12 (bookworm) x86-64 machine for the real-kernel oracle:
# QEMU (TCG is enough), static busybox, the Debian cloud kernel + its DWARF, drgn.
# Idempotent: re-running only checks what is already there.  Must run as root.
#
#   KREL=6.1.0-56-cloud-amd64 DRGN_VERSION=0.3.0 sh tests/realkernel/setup.sh
set -eu

KREL="${KREL:-6.1.0-56-cloud-amd64}"
DRGN_VERSION="${DRGN_VERSION:-0.3.0}"
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
python3 -c "import drgn; print('setup.sh: drgn', drgn.__version__)"
echo "setup.sh: kernel /boot/vmlinuz-${KREL}"
echo "setup.sh: vmlinux ${VMLINUX}"
echo "setup.sh: ok"
