#!/bin/bash
# Build the kernel + initramfs for the e2e qemu harness.
#
#   build-guest.sh [--agent PATH] [--init PATH] [--out DIR] [--kernel-pkg NAME]
#                  [--cache DIR] [--modules "m1 m2 ..."] [--extra FILE:DEST ...]
#                  [--arch amd64|arm64]
#
# Outputs DIR/{vmlinuz,vmlinux,initrd.gz} (default DIR=/tmp/e2e-guest).
# --arch arm64: Debian's arm64 kernel and busybox-static:arm64 (apt-get download of the
# :arm64 packages, which needs `dpkg --add-architecture arm64`, done by the install step
# scripts/install-deps.sh); no vmlinux (vmlinuz is already the
# uncompressed arm64 Image, which qemu-system-aarch64 boots directly).
# The Debian kernel package is downloaded with `apt-get download` and unpacked
# with dpkg-deb -x into the cache dir (never installed on this machine).
# The static agent (--agent) goes to /usr/bin/ci-agent, where a package puts it;
# tests/e2e/guest/ (agent configs, passwd, group) is copied into the image.
# Needs: apt (after apt-get update), dpkg-deb, busybox-static (amd64), cpio, gzip,
# and depmod (kmod) or busybox depmod. Run as root or any user with apt access.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
AGENT=""; INIT="$HERE/init.sh"; OUT=/tmp/e2e-guest; CACHE=/tmp/e2e-cache
KPKG=${KERNEL_PKG:-}; ARCH=amd64
# Drivers for every way boot.sh can attach a seed / NIC; deps are added automatically.
MODULES_AMD64="scsi_mod sd_mod sr_mod cdrom libata ata_piix ata_generic ahci \
virtio_pci virtio_blk virtio_scsi virtio_net e1000 \
isofs fat vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859_1 \
crc32c_generic crc32c-intel libcrc32c ext4 autofs4"
# arm64 (qemu -M virt): PCI virtio only; the x86 disk controllers do not exist there.
MODULES_ARM64="scsi_mod sd_mod sr_mod cdrom virtio_pci virtio_mmio virtio_blk virtio_scsi virtio_net \
isofs fat vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859_1 crc32c_generic libcrc32c ext4 autofs4"
MODULES=""
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --agent) AGENT=$2; shift 2 ;;
        --init) INIT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --kernel-pkg) KPKG=$2; shift 2 ;;
        --modules) MODULES=$2; shift 2 ;;
        --extra) EXTRA+=("$2"); shift 2 ;;   # host_file:/path/in/guest
        --arch) case "$2" in amd64|arm64) ARCH=$2 ;; *) echo "bad --arch $2" >&2; exit 2 ;; esac; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[ -n "$MODULES" ] || { if [ "$ARCH" = arm64 ]; then MODULES=$MODULES_ARM64; else MODULES=$MODULES_AMD64; fi; }
log() { echo "[build-guest] $*" >&2; }
t0=$(date +%s%N)

# ---- 1. kernel package ---------------------------------------------------------
# A foreign-architecture package is named PKG:arm64 to apt; its .deb file is PKG_VER_arm64.deb.
QUAL=""; [ "$ARCH" = amd64 ] || QUAL=":$ARCH"
fetch() { # fetch PKG DIR: download PKG (for $ARCH) into the cache and unpack it to DIR once
    local pkg=$1 dir=$2
    [ -d "$dir" ] && return 0
    log "downloading $pkg$QUAL"
    ( cd "$CACHE" && rm -f "${pkg}"_*_"$ARCH".deb && apt-get -q -o APT::Sandbox::User=root download "$pkg$QUAL" >&2 ) || {
        [ "$ARCH" = amd64 ] || echo "apt has no $ARCH packages: dpkg --add-architecture $ARCH && apt-get update (scripts/install-deps.sh does)" >&2
        return 1; }
    rm -rf "$dir.tmp"; dpkg-deb -x "$CACHE/${pkg}"_*_"$ARCH".deb "$dir.tmp"; mv "$dir.tmp" "$dir"
}
if [ -z "$KPKG" ]; then
    KPKG=$(apt-cache depends "linux-image-$ARCH$QUAL" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    KPKG=${KPKG%%:*}
    [ -n "$KPKG" ] || { echo "cannot resolve linux-image-$ARCH$QUAL (run apt-get update${QUAL:+; scripts/install-deps.sh adds the $ARCH architecture})" >&2; exit 1; }
fi
KDIR=$CACHE/$KPKG
mkdir -p "$CACHE"
ls "$KDIR"/boot/vmlinuz-* >/dev/null 2>&1 || rm -rf "$KDIR"
fetch "$KPKG" "$KDIR"
KVER=$(basename "$(ls -d "$KDIR"/lib/modules/*/ | head -1)")
MDIR=$KDIR/lib/modules/$KVER
if [ ! -s "$MDIR/modules.dep" ]; then   # the .deb ships no modules.dep (postinst runs depmod)
    log "depmod $KVER"
    if command -v depmod >/dev/null; then depmod -b "$KDIR" "$KVER"
    else busybox depmod -b "$KDIR" "$KVER"; fi
fi

# ---- 2. resolve module load order from modules.dep ---------------------------
declare -A DEPS PATHOF SEEN
while IFS= read -r line; do
    key=${line%%:*}; DEPS[$key]=${line#*:}
    n=$(basename "$key"); n=${n%%.ko*}; PATHOF[${n//-/_}]=$key
done < "$MDIR/modules.dep"
ORDER=()
visit() { # depth-first: dependencies before the module itself
    local p=$1 d
    [ -n "${SEEN[$p]:-}" ] && return; SEEN[$p]=1
    for d in ${DEPS[$p]}; do visit "$d"; done
    ORDER+=("$p")
}
for m in $MODULES; do
    k=${m//-/_}
    if [ -n "${PATHOF[$k]:-}" ]; then visit "${PATHOF[$k]}"
    elif grep -qE "/${m}\.ko" "$MDIR/modules.builtin" 2>/dev/null || grep -qE "/${k}\.ko" "$MDIR/modules.builtin" 2>/dev/null; then
        log "module $m is built in"
    else log "WARNING: module $m not found"; fi
done

# ---- 3. initramfs tree ---------------------------------------------------------
ST=$(mktemp -d /tmp/e2e-initramfs.XXXXXX)
trap 'rm -rf "$ST"' EXIT
mkdir -p "$ST"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,var/log,var/lib,usr/bin,usr/sbin,lib/modules/"$KVER"}
chmod 0700 "$ST/root"
# is_static: `file` says "statically linked" or "static-pie linked". Unlike ldd, it also
# answers for another architecture's binaries.
is_static() { file -bL "$1" | grep -qE 'statically linked|static-pie linked'; }
if [ "$ARCH" = amd64 ]; then
    BB=$(command -v busybox)
    is_static "$BB" || { echo "busybox at $BB is not static: apt-get install busybox-static" >&2; exit 1; }
else
    fetch busybox-static "$CACHE/busybox-static-$ARCH"
    BB=$CACHE/busybox-static-$ARCH/bin/busybox
    is_static "$BB" || { echo "$BB is not a static ELF" >&2; exit 1; }
fi
cp "$BB" "$ST/bin/busybox"
ln -s busybox "$ST/bin/sh"
: > "$ST/etc/e2e-modules.order"
for p in "${ORDER[@]}"; do
    src=$MDIR/$p; dst=$ST/lib/modules/$KVER/${p%.ko*}.ko
    mkdir -p "$(dirname "$dst")"
    case "$p" in   # busybox insmod cannot read compressed modules: decompress here
        *.ko.xz)  xz -dc "$src" > "$dst" ;;
        *.ko.zst) zstd -qdc "$src" > "$dst" ;;
        *.ko.gz)  gzip -dc "$src" > "$dst" ;;
        *)        cp "$src" "$dst" ;;
    esac
    echo "${p%.ko*}.ko" >> "$ST/etc/e2e-modules.order"
done
cp "$MDIR"/modules.builtin* "$MDIR"/modules.order "$ST/lib/modules/$KVER/" 2>/dev/null || true
# modules.dep/.alias for the subset, so the kernel's request_module -> /sbin/modprobe works
if command -v depmod >/dev/null; then depmod -b "$ST" "$KVER"; else busybox depmod -b "$ST" "$KVER"; fi
ln -s ../bin/busybox "$ST/sbin/modprobe"
install -m 0755 "$INIT" "$ST/init"
# A minimal OS for the agent: passwd/group (users are looked up from files), the agent
# configs the cases choose with e2e.conf=NAME, and a `bash` for scripts the agent hands to
# bash (busybox has no bash applet; the test scripts are POSIX sh).
cp -a "$HERE/guest/." "$ST/"
printf '#!/bin/sh\nexec /bin/sh "$@"\n' > "$ST/bin/bash"; chmod 0755 "$ST/bin/bash"
if [ -n "$AGENT" ]; then
    install -m 0755 "$AGENT" "$ST/usr/bin/ci-agent"
    is_static "$AGENT" || { echo "$AGENT is dynamically linked; it cannot run in the initramfs (build for a *-unknown-linux-musl target)" >&2; exit 1; }
fi
for e in "${EXTRA[@]}"; do
    src=${e%%:*}; dst=${e#*:}; mkdir -p "$ST$(dirname "$dst")"; cp -a "$src" "$ST$dst"
done

# ---- 4. pack -------------------------------------------------------------------
mkdir -p "$OUT"
cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
# Also unpack the bzImage payload to an ELF vmlinux: qemu boots it through the PVH entry
# point (CONFIG_PVH=y), skipping the in-guest decompression that costs ~6 s under TCG.
extract_vmlinux() { # magic offset + decompressor, like the kernel's scripts/extract-vmlinux
    local img=$1 off
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | head -1 | cut -d: -f1)
    if [ -n "$off" ]; then tail -c +$((off+1)) "$img" | xz -dc --single-stream; return; fi
    off=$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$img" | head -1 | cut -d: -f1)
    if [ -n "$off" ]; then tail -c +$((off+1)) "$img" | zstd -qdc; return; fi
    off=$(LC_ALL=C grep -obUaP '\x1f\x8b\x08' "$img" | head -1 | cut -d: -f1)
    [ -n "$off" ] && tail -c +$((off+1)) "$img" | gzip -dc 2>/dev/null
}
rm -f "$OUT/vmlinux"
[ "$ARCH" = amd64 ] && extract_vmlinux "$OUT/vmlinuz" > "$OUT/vmlinux.tmp" 2>/dev/null || true   # tail gets SIGPIPE: ignore status
if [ "$ARCH" != amd64 ]; then
    :   # arm64 vmlinuz is the plain Image: qemu-system-aarch64 boots it as it is
elif [ "$(head -c4 "$OUT/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
else
    rm -f "$OUT/vmlinux.tmp"; log "could not extract vmlinux (boot.sh will use the bzImage)"
fi
( cd "$ST" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -6 -n > "$OUT/initrd.gz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
cp "$ST/etc/e2e-modules.order" "$OUT/modules.order.txt"
echo "$KPKG $(dpkg-deb -f "$CACHE/${KPKG}"_*.deb Version 2>/dev/null) $KVER" > "$OUT/kernel.txt"
log "kernel $KPKG ($KVER), ${#ORDER[@]} modules, initrd $(du -h "$OUT/initrd.gz" | cut -f1), $(( ($(date +%s%N) - t0) / 1000000 )) ms"
echo "$OUT"
