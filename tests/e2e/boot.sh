#!/bin/bash
# Boot the e2e guest under qemu, capture the serial console, enforce a timeout.
#
#   boot.sh [--seed IMG] [--attach cdrom|sata-cdrom|scsi-cdrom|virtio-blk]
#           [--serve SCRIPT] [--ci-seed BIN] [--log FILE] [--timeout SECS]
#           [--accel auto|kvm|tcg] [--nic virtio|e1000|none] [--mem MB] [--smp N]
#           [--append "k=v ..."] [--kernel FILE] [--initrd FILE]
#           [--disk IMG [--disk-format raw|qcow2] [--disk-keep]] [--persist IMG] [--quiet]
#           [--arch amd64|arm64] [--hostfwd PORT[:GUESTADDR]]
#
# Exit: 0 when qemu powered off and the log has "E2E: DONE"; 124 on timeout;
#       1 otherwise. Prints "BOOT: ..." summary lines (accel, wall time) on stderr.
# Networking is qemu user mode (slirp) with restrict=on: the guest reaches nothing
# outside qemu. With --serve SCRIPT, guest TCP to 10.0.2.100:80 is answered by
# `ci-seed serve --stdio SCRIPT` (spawned by slirp per connection, through
# serve-wrap.sh, which appends one line per request to LOG.http).
# --disk IMG: root disk of the full-distro variant (/dev/vda, snapshot=on: writes dropped).
# --disk-keep: keep --disk's writes (a second boot of the same root disk, e.g. a new instance).
# --disk-format: its format (raw by default; qcow2 for a clone overlay on a template).
# --persist IMG: a disk whose writes are kept (state across boots), attached first.
# --arch arm64: qemu-system-aarch64 -M virt -cpu cortex-a57 (TCG always), console ttyAMA0,
#   the guest of `build-guest.sh --arch arm64`; seeds attach as virtio-blk or scsi-cdrom.
# --hostfwd PORT[:GUESTADDR]: forward the host's 127.0.0.1:PORT (loopback only) to port 22
#   of the guest's GUESTADDR (default 10.0.2.15, slirp's DHCP address; a guest with a
#   static address in 10.0.2.0/24 needs it), so the host can reach the guest's sshd.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GUEST=${E2E_GUEST:-/tmp/e2e-guest}
KERNEL=$GUEST/vmlinux; [ -f "$KERNEL" ] || KERNEL=$GUEST/vmlinuz   # vmlinux = PVH entry, much faster under TCG
INITRD=$GUEST/initrd.gz
SEED=""; ATTACH=cdrom; SERVE=""; CISEED=""; LOG=/tmp/e2e-serial.log; TIMEOUT=300; ACCEL=auto
NIC=virtio; MEM=512; SMP=1; APPEND=""; DISK=""; PERSIST=""; QUIET=0; HOSTFWD=""
DISK_FORMAT=raw; ARCH=amd64
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) SEED=$2; shift 2 ;;
        --attach) ATTACH=$2; shift 2 ;;
        --serve) SERVE=$2; shift 2 ;;
        --ci-seed) CISEED=$2; shift 2 ;;
        --persist) PERSIST=$2; shift 2 ;;
        --disk-keep) DISK_SNAPSHOT=off; shift ;;
        --log) LOG=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --accel) ACCEL=$2; shift 2 ;;
        --nic) NIC=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --append) APPEND=$2; shift 2 ;;
        --kernel) KERNEL=$2; shift 2 ;;
        --initrd) INITRD=$2; shift 2 ;;
        --disk) DISK=$2; shift 2 ;;
        --disk-format) case "$2" in raw|qcow2) DISK_FORMAT=$2 ;; *) echo "bad --disk-format $2" >&2; exit 2 ;; esac; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        --arch) case "$2" in amd64|arm64) ARCH=$2 ;; *) echo "bad --arch $2" >&2; exit 2 ;; esac; shift 2 ;;
        --hostfwd)
            if [[ "$2" =~ ^([0-9]{1,5})(:10\.0\.2\.[0-9]{1,3})?$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[1]}" -le 65535 ]; then
                HOSTFWD="127.0.0.1:${BASH_REMATCH[1]}-${BASH_REMATCH[2]#:}:22"
            else echo "bad --hostfwd $2 (PORT or PORT:10.0.2.X)" >&2; exit 2; fi
            shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
abspath() { (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")"); }
nocomma() { case "$1" in *,*) echo "path must not contain ',': $1" >&2; exit 2 ;; esac; }

if [ "$ARCH" = arm64 ]; then
    ACCEL=tcg   # an arm64 guest on this x86 host is always emulated
elif [ "$ACCEL" = auto ]; then
    # /dev/kvm alone is not enough: on hosts whose kvm is PVM (kvm_pvm, no vmx/svm flag)
    # qemu starts with accel=kvm but a stock kernel hangs right after "Probing EDD".
    ACCEL=tcg
    if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ] && echo quit | timeout 20 qemu-system-x86_64 -accel kvm \
        -machine none -nodefaults -display none -monitor stdio >/dev/null 2>&1; then ACCEL=kvm; fi
fi
CONSOLE=ttyS0
if [ "$ARCH" = arm64 ]; then
    case "$ATTACH" in cdrom|sata-cdrom) echo "boot.sh: --arch arm64 has no IDE/SATA; use --attach virtio-blk or scsi-cdrom" >&2; exit 2 ;; esac
    MACHINE=virt; CONSOLE=ttyAMA0
    Q=(qemu-system-aarch64 -nodefaults -no-reboot -display none -m "$MEM" -smp "$SMP" -machine virt,accel=tcg -cpu cortex-a57)
else
    Q=(qemu-system-x86_64 -nodefaults -no-reboot -display none -m "$MEM" -smp "$SMP")
    MACHINE=pc
    [ "$ATTACH" = sata-cdrom ] && MACHINE=q35
    if [ "$ACCEL" = kvm ]; then Q+=(-machine "$MACHINE,accel=kvm" -cpu host)
    else Q+=(-machine "$MACHINE,accel=tcg"); fi
fi
[ "$NIC" = none ] && APPEND="e2e.net=0 $APPEND"
Q+=(-kernel "$KERNEL" -initrd "$INITRD" -append "console=$CONSOLE quiet panic=-1 $APPEND")
mkdir -p "$(dirname "$LOG")"; : > "$LOG"; LOG=$(abspath "$LOG"); nocomma "$LOG"
Q+=(-chardev "stdio,id=con0,signal=off,logfile=$LOG" -serial chardev:con0)

# --disk comes first so it is /dev/vda (root disk of the systemd variant); snapshot=on: writes are discarded
if [ -n "$DISK" ]; then DISK=$(abspath "$DISK"); nocomma "$DISK"; Q+=(-drive "file=$DISK,if=virtio,format=$DISK_FORMAT,snapshot=${DISK_SNAPSHOT:-on}"); fi
if [ -n "$PERSIST" ]; then PERSIST=$(abspath "$PERSIST"); nocomma "$PERSIST"; Q+=(-drive "file=$PERSIST,if=virtio,format=raw"); fi
if [ -n "$SEED" ]; then
    SEED=$(abspath "$SEED"); nocomma "$SEED"
    case "$ATTACH" in
        cdrom)       Q+=(-drive "file=$SEED,if=ide,index=2,media=cdrom,format=raw,readonly=on") ;;
        sata-cdrom)  Q+=(-drive "file=$SEED,if=none,id=cd0,media=cdrom,format=raw,readonly=on" -device ide-cd,drive=cd0,bus=ide.1) ;;
        scsi-cdrom)  Q+=(-device virtio-scsi-pci,id=scsi0 -drive "file=$SEED,if=none,id=cd0,media=cdrom,format=raw,readonly=on" -device scsi-cd,drive=cd0,bus=scsi0.0) ;;
        virtio-blk)  Q+=(-drive "file=$SEED,if=virtio,format=raw,readonly=on") ;;
        *) echo "bad --attach $ATTACH" >&2; exit 2 ;;
    esac
fi

if [ "$NIC" != none ]; then
    NETDEV="user,id=n0,restrict=on"
    # restrict=on still honours explicit forwards; the host side is bound to loopback only
    [ -z "$HOSTFWD" ] || NETDEV+=",hostfwd=tcp:$HOSTFWD"
    if [ -n "$SERVE" ]; then
        # slirp splits the command on spaces and runs it without a shell: no spaces or commas
        SERVE=$(abspath "$SERVE"); nocomma "$SERVE"
        [ -n "$CISEED" ] || CISEED=$(command -v ci-seed || true)
        [ -x "$CISEED" ] || { echo "boot.sh: --serve needs --ci-seed BIN" >&2; exit 2; }
        CISEED=$(abspath "$CISEED"); nocomma "$CISEED"
        for p in "$SERVE" "$CISEED" "$LOG" "$HERE"; do case "$p" in *" "*) echo "path must not contain spaces: $p" >&2; exit 2 ;; esac; done
        : > "$LOG.http"
        NETDEV+=",guestfwd=tcp:10.0.2.100:80-cmd:$HERE/serve-wrap.sh $LOG.http $CISEED $SERVE"
    fi
    case "$NIC" in
        virtio) DEV=virtio-net-pci ;;
        e1000)  DEV=e1000 ;;
        *) echo "bad --nic $NIC" >&2; exit 2 ;;
    esac
    Q+=(-netdev "$NETDEV" -device "$DEV,netdev=n0,romfile=")
fi

t0=$(date +%s%N)
echo "BOOT: accel=$ACCEL machine=$MACHINE attach=$ATTACH seed=${SEED:-none} nic=$NIC timeout=${TIMEOUT}s start_ns=$t0${HOSTFWD:+ hostfwd=$HOSTFWD}" >&2
if [ "$QUIET" = 1 ]; then
    timeout -k 5 "$TIMEOUT" "${Q[@]}" < /dev/null > /dev/null; rc=$?
else
    timeout -k 5 "$TIMEOUT" "${Q[@]}" < /dev/null; rc=$?
fi
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "BOOT: qemu rc=$rc wall_ms=$ms log=$LOG" >&2
if [ $rc = 124 ] || [ $rc = 137 ]; then echo "BOOT: TIMEOUT after ${TIMEOUT}s" >&2; exit 124; fi
if grep -q 'E2E: DONE' "$LOG"; then exit 0; fi
echo "BOOT: guest did not reach E2E: DONE" >&2; exit 1
