#!/bin/bash
# Full-distro boot: Debian bookworm (debootstrap minbase + systemd + openssh-server + sudo)
# with the ci-agent .deb installed by dpkg (its postinst enables the units), booted under
# qemu with a NoCloud seed on an IDE cdrom. Asserts, from inside the guest:
#   - ci-agent.service (early) finished before ssh.service started (systemd timestamps)
#   - both units succeeded; hostname; the default user and a listed user exist, with their
#     keys (0600, owned by them) and groups; runcmd ran; `ci-agent status --json` is done
#   - `systemctl is-system-running`: no failed unit of ours
#
#   tests/e2e/distro.sh [--work DIR] [--out DIR] [--deb FILE] [--keep-rootfs]
#
# Needs root (debootstrap, chroot dpkg -i), debootstrap, e2fsprogs, qemu, cargo-deb.
# Costs ~2 min for debootstrap (cached in WORK/rootfs-base for later runs) + ~40-60 s boot.
# Exit 0 when every assertion holds; otherwise prints "E2E-FAIL: why" lines and exits 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=/tmp/ci-agent-e2e; OUT=""; DEB=""
while [ $# -gt 0 ]; do
    case "$1" in
        --work) WORK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --deb) DEB=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "distro.sh: unknown arg $1" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-$WORK/cases/distro-systemd-deb}
mkdir -p "$OUT" "$WORK"
log() { echo "distro: $*" >&2; }
die() { echo "E2E-FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
t0=$(date +%s)

# ---- 1. the package and the kernel/initramfs --------------------------------------
if [ -z "$DEB" ]; then
    log "building the .deb (packaging/check-deb.sh)"
    DEB=$("$REPO/packaging/check-deb.sh" 2> "$OUT/check-deb.log" | tail -n 1) \
        || { tail -n 20 "$OUT/check-deb.log" >&2; die "packaging/check-deb.sh failed (see $OUT/check-deb.log)"; }
fi
[ -f "$DEB" ] || die "no .deb at '$DEB'"
GUEST=$WORK/guest
if [ ! -f "$GUEST/initrd.gz" ]; then
    log "build-guest.sh"
    "$HERE/build-guest.sh" --out "$GUEST" > "$OUT/build-guest.log" 2>&1 || die "build-guest.sh failed"
fi

# ---- 2. the root filesystem -----------------------------------------------------------
BASE=$WORK/rootfs-base
INCLUDE=systemd-sysv,udev,kmod,iproute2,openssh-server,sudo
if [ ! -f "$BASE/.e2e-complete" ] || [ "$(cat "$BASE/.e2e-complete")" != "$INCLUDE" ]; then
    rm -rf "$BASE"
    MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /:\/\//){print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    log "debootstrap bookworm from $MIRROR (~2 min)"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$BASE" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (see $WORK/debootstrap.log)"; }
    rm -rf "$BASE"/var/cache/apt/archives/*.deb "$BASE"/var/lib/apt/lists/*
    echo "$INCLUDE" > "$BASE/.e2e-complete"
fi
DIR=$WORK/rootfs
rm -rf "$DIR"; cp -a "$BASE" "$DIR"; rm -f "$DIR/.e2e-complete"

# The package, installed the way a template build would: dpkg runs our postinst.
cp "$DEB" "$DIR/tmp/ci-agent.deb"
chroot "$DIR" dpkg -i /tmp/ci-agent.deb > "$OUT/dpkg.log" 2>&1 || { cat "$OUT/dpkg.log" >&2; die "dpkg -i failed in the rootfs"; }
rm -f "$DIR/tmp/ci-agent.deb"
for u in ci-agent ci-agent-late; do
    [ -L "$DIR/etc/systemd/system/multi-user.target.wants/$u.service" ] || die "postinst did not enable $u.service"
done

# Template identity: what a freshly built template has before its first clone boots.
echo template > "$DIR/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$DIR/etc/fstab"
sed -i 's/^root:[^:]*:/root::/' "$DIR/etc/shadow"   # console login for debugging (e2e.shell)
mkdir -p "$DIR/etc/systemd/network"
printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n' > "$DIR/etc/systemd/network/50-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$DIR/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
cat > "$DIR/usr/local/sbin/e2e-report" <<'EOF'
#!/bin/sh
# Waits for the boot and for ci-agent-late (Type=exec: it may outlive the boot), prints
# what the host asserts on to the serial console, then powers off.
systemctl is-system-running --wait >/dev/null 2>&1
i=0
while [ $i -lt 180 ]; do
    case "$(systemctl show -p SubState --value ci-agent-late.service)" in exited|dead|failed) break ;; esac
    sleep 1; i=$((i+1))
done
# serial-getty's agetty vhangup()s ttyS0 during boot, killing an fd opened before: reopen now
exec >/dev/ttyS0 2>&1
echo   # end the getty's "login:" prompt line, so every E2E line starts a line
echo "E2E: state=$(systemctl is-system-running)"
echo "E2E: failed-units=$(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
for u in ci-agent ci-agent-late ssh; do
    for p in ActiveState SubState Result ExecMainStatus ExecMainStartTimestampMonotonic ExecMainExitTimestampMonotonic ActiveEnterTimestampMonotonic; do
        echo "E2E: unit $u $p=$(systemctl show -p "$p" --value "$u.service")"
    done
done
echo "E2E: hostname=$(hostname)"
echo "E2E: etc-hostname=$(cat /etc/hostname)"
for u in debian alice; do
    echo "E2E: passwd $u=$(getent passwd "$u")"
    echo "E2E: groups $u=$(id -nG "$u" 2>&1)"
    h=$(getent passwd "$u" | cut -d: -f6)
    [ -n "$h" ] || continue
    echo "E2E: ssh-dir $u=$(stat -c '%a %u' "$h/.ssh" 2>&1)"
    echo "E2E: ak-stat $u=$(stat -c '%a %u' "$h/.ssh/authorized_keys" 2>&1)"
    echo "E2E: uid $u=$(id -u "$u")"
    sed "s/^/E2E: ak $u | /" "$h/.ssh/authorized_keys" 2>/dev/null
done
echo "E2E: runcmd=$(cat /var/tmp/e2e-runcmd 2>&1)"
ci-agent status --json 2>&1 | sed 's/^/E2E: status | /'
journalctl -b --no-pager -o short-monotonic -u ci-agent.service -u ci-agent-late.service | tail -n 40 | sed 's/^/E2E: journal | /'
systemd-analyze time 2>&1 | sed 's/^/E2E: /'
systemd-analyze critical-chain ssh.service 2>&1 | sed 's/^/E2E: chain | /'
echo "E2E: DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
systemctl poweroff --no-block
EOF
chmod 755 "$DIR/usr/local/sbin/e2e-report"
cat > "$DIR/etc/systemd/system/e2e-report.service" <<'EOF'
[Unit]
Description=e2e: report boot result on the serial console and power off
[Service]
Type=simple
ExecStart=/usr/local/sbin/e2e-report
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/e2e-report.service "$DIR/etc/systemd/system/multi-user.target.wants/e2e-report.service"
IMG=$WORK/rootfs.img
rm -f "$IMG"; truncate -s 1G "$IMG"
mkfs.ext4 -q -F -L rootfs -d "$DIR" "$IMG"
rm -rf "$DIR"
t1=$(date +%s)
log "rootfs image ready in $((t1 - t0))s"

# ---- 3. the seed (img-clone's genisoimage recipe; ci-seed is covered by the matrix) ----
KEY1='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyOnlyForTheE2eHarnessAAAAAAAAAAAA e2e-key-1'
KEY2='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eSecondKeyForTheE2eHarnessAAAAAAAAAAAAA e2e-key-2'
S=$(mktemp -d "$WORK/distro-seed.XXXXXX")
cat > "$S/user-data" <<EOF
#cloud-config
ssh_authorized_keys:
  - $KEY1
users:
  - default
  - name: alice
    groups: [sudo]
    shell: /bin/bash
    ssh_authorized_keys:
      - $KEY2
runcmd:
  - echo late-ok > /var/tmp/e2e-runcmd
EOF
printf 'instance-id: iid-distro-%s\nlocal-hostname: e2e-distro\n' "$(date +%s%N)" > "$S/meta-data"
genisoimage -quiet -output "$OUT/seed.iso" -volid cidata -joliet -rock -input-charset utf-8 "$S/user-data" "$S/meta-data"
rm -rf "$S"

# ---- 4. boot ----------------------------------------------------------------------------
rc=0
E2E_GUEST=$GUEST "$HERE/boot.sh" --disk "$IMG" --seed "$OUT/seed.iso" --attach cdrom --timeout 600 \
    --append "e2e.root=/dev/vda" --log "$OUT/serial.log" --quiet 2> "$OUT/boot.err" || rc=$?
# (a getty prompt may still share a line with a report line: cut it off)
tr -d '\r' < "$OUT/serial.log" | sed -E 's/^.* login: (E2E: )/\1/' > "$OUT/serial.txt"
log "boot rc=$rc in $(( $(date +%s) - t1 ))s (log $OUT/serial.txt)"
rm -f "$IMG"

# ---- 5. assertions ----------------------------------------------------------------------
T=$OUT/serial.txt
n=0
bad() { echo "E2E-FAIL: $*"; n=$((n+1)); }
val() { sed -n "s/^E2E: $1=//p" "$T" | head -n 1; }
[ "$rc" = 0 ] || bad "boot did not reach E2E: DONE (boot.sh rc=$rc)"
[ "$(val 'unit ci-agent Result')" = success ] || bad "ci-agent.service Result is '$(val 'unit ci-agent Result')'"
[ "$(val 'unit ci-agent-late Result')" = success ] || bad "ci-agent-late.service Result is '$(val 'unit ci-agent-late Result')'"
early_done=$(val 'unit ci-agent ExecMainExitTimestampMonotonic')   # oneshot: exit = done
ssh_start=$(val 'unit ssh ExecMainStartTimestampMonotonic')
if [ -z "$early_done" ] || [ "$early_done" = 0 ] || [ -z "$ssh_start" ] || [ "$ssh_start" = 0 ]; then
    bad "missing timestamps (ci-agent done=$early_done, ssh start=$ssh_start)"
elif [ "$early_done" -gt "$ssh_start" ]; then
    bad "ci-agent.service finished at ${early_done}us, after ssh.service started at ${ssh_start}us"
fi
case " $(val failed-units) " in *" ci-agent"*) bad "failed units include ours: $(val failed-units)" ;; esac
state=$(val state)
case "$state" in
    running) ;;
    degraded) [ -n "$(val failed-units)" ] && log "system degraded, not by us: $(val failed-units)" ;;
    *) bad "system state is '$state'" ;;
esac
[ "$(val hostname)" = e2e-distro ] || bad "hostname is '$(val hostname)'"
[ "$(val etc-hostname)" = e2e-distro ] || bad "/etc/hostname is '$(val etc-hostname)'"
for u in debian alice; do
    [ -n "$(val "passwd $u")" ] || { bad "user $u not created"; continue; }
    uid=$(val "uid $u")
    [ "$(val "ssh-dir $u")" = "700 $uid" ] || bad "$u ~/.ssh is '$(val "ssh-dir $u")', want '700 $uid'"
    [ "$(val "ak-stat $u")" = "600 $uid" ] || bad "$u authorized_keys is '$(val "ak-stat $u")', want '600 $uid'"
done
grep -qxF "E2E: ak debian | $KEY1" "$T" || bad "debian lacks e2e-key-1"
grep -qxF "E2E: ak alice | $KEY2" "$T" || bad "alice lacks e2e-key-2"
case " $(val 'groups alice') " in *" sudo "*) ;; *) bad "alice not in sudo: $(val 'groups alice')" ;; esac
[ "$(val runcmd)" = late-ok ] || bad "runcmd marker is '$(val runcmd)'"
st=$(sed -n 's/^E2E: status | //p' "$T" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null || true)
[ "$st" = done ] || bad "ci-agent status --json: status is '$st', want 'done'"
log "total $(( $(date +%s) - t0 ))s"
[ "$n" = 0 ] || exit 1
echo "distro: all assertions hold"
