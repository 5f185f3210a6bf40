#!/bin/bash
# Full-distro boot: Debian bookworm (debootstrap minbase + systemd + openssh-server + sudo)
# with the ci-agent .deb installed by dpkg (its postinst enables the units), booted under
# qemu with a NoCloud seed on an IDE cdrom. Asserts, from inside the guest:
#   - ci-agent.service (early) finished before ssh.service started (systemd timestamps)
#   - both units succeeded; hostname; the default user and a listed user exist, with their
#     keys (0600, owned by them) and groups; runcmd ran; `ci-agent status --json` is done
#   - `systemctl is-system-running`: no failed unit of ours
#   - a Packer-style `cloud-init status --wait` (through the package's cloud-init link) and
#     a /var/lib/cloud/instance/boot-finished poll both return after the late pass
#   - network-config (v2, static, matched by MAC) under systemd-networkd, proven with
#     `ip -j addr`, `ip -j route` and resolv.conf: the NIC has exactly the seed's address
#     (not slirp's DHCP 10.0.2.15), the default route is the seed's and not DHCP's, DNS is
#     the seed's; the template's catch-all 50-dhcp.network is untouched
#   - a second boot of the same disk with a new instance-id and another address: the
#     agent removed the first instance's files and the NIC has only the new address
#     (skip with --one-boot; it costs one more boot). Between the two boots the template
#     switches to ifupdown (the end of the first boot disables systemd-networkd, enables
#     networking.service and adds the Debian installer's `allow-hotplug NIC` + `iface NIC
#     inet dhcp` to /etc/network/interfaces; ifupdown and isc-dhcp-client are in the image,
#     unused before), so the second boot proves the ENI renderer too: the same checks as
#     above, plus the template's stanza commented out (not deleted), our interfaces.d file,
#     networking.service succeeded, no dhclient ran (no process, no lease) and resolv.conf
#     is the agent's regular file (no resolvconf here: `dns-nameservers` alone would do
#     nothing)
#   - template settings from the seed (first boot): timezone (`date +%Z`, `timedatectl`),
#     locale (generated, /etc/default/locale), ntp (systemd-timesyncd drop-in, NTP enabled),
#     ca_certs (the seed's CA in /etc/ssl/certs and the bundle), mounts (a second virtio disk,
#     `findmnt`) and swap (`swapon --show`)
#   - the disk is a clone: a GPT template (root = partition 1, 1 GiB of ext4) under a qcow2
#     overlay enlarged by 512 MiB with `qemu-img resize`, kept across both boots; the first
#     boot's growpart and resize_rootfs grew the partition to the end of the disk (lsblk,
#     sysfs) and ext4 to the partition (dumpe2fs, df); a second early pass in the same boot
#     (`ci-agent run --stage early`, as a later boot runs it) and the second boot changed
#     nothing; at the end the host reads the clone's table back with `sfdisk --verify`
#     and `sgdisk --verify`
#   - host keys from the seed: the first seed is made by `ci-seed --ssh-host-keys
#     --known-hosts FILE` (the .deb's ci-seed); qemu forwards 127.0.0.1:PORT to the guest's
#     port 22 and the host's `ssh-keyscan -p PORT 127.0.0.1` gets exactly the keys of that
#     known_hosts file (key material compared), which the guest also has in /etc/ssh
#
#   tests/e2e/distro.sh [--work DIR] [--out DIR] [--deb FILE] [--one-boot] [--timeout SECS]
#
# Needs root (debootstrap, chroot dpkg -i), debootstrap, e2fsprogs, qemu, cargo-deb, openssl,
# sfdisk, sgdisk, ssh-keyscan.
# Costs ~2 min for debootstrap (cached in WORK/rootfs-base for later runs) + ~40-60 s per boot
# unloaded; under load a boot took ~9 min here (E2E_DISTRO_TIMEOUT or --timeout raise the limit).
# Exit 0 when every assertion holds; otherwise prints "E2E-FAIL: why" lines and exits 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=/tmp/ci-agent-e2e; OUT=""; DEB=""; SECOND=1; TIMEOUT=${E2E_DISTRO_TIMEOUT:-600}
while [ $# -gt 0 ]; do
    case "$1" in
        --work) WORK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --deb) DEB=$2; shift 2 ;;
        --one-boot) SECOND=0; shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
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
# The package's own ci-seed makes the first seed (with the clone's host keys).
CISEED=$WORK/ci-seed
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/bin/ci-seed > "$CISEED" || die "no usr/bin/ci-seed in $DEB"
chmod 755 "$CISEED"
GUEST=$WORK/guest
if [ ! -f "$GUEST/initrd.gz" ]; then
    log "build-guest.sh"
    "$HERE/build-guest.sh" --out "$GUEST" > "$OUT/build-guest.log" 2>&1 || die "build-guest.sh failed"
fi

# ---- 2. the root filesystem -----------------------------------------------------------
BASE=$WORK/rootfs-base
INCLUDE=systemd-sysv,udev,kmod,iproute2,openssh-server,sudo,dbus,tzdata,locales,ca-certificates,systemd-timesyncd,e2fsprogs
INCLUDE=$INCLUDE,ifupdown,isc-dhcp-client   # the second instance's template uses ifupdown
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
[ "$(readlink "$DIR/usr/bin/cloud-init")" = ci-agent ] || die "postinst did not link /usr/bin/cloud-init to ci-agent"
# The files tools written for cloud-init poll (boot-finished, result.json).
mkdir -p "$DIR/etc/ci-agent.conf.d"
printf 'cloud_init_compat: true\n' > "$DIR/etc/ci-agent.conf.d/50-e2e.conf"

# What a Packer shell provisioner (or Terraform remote-exec) runs first on a cloud-init
# image: `cloud-init status --wait`, and a poll for boot-finished. Started after the early
# pass and before the late one (a real provisioner connects at some point in between), so
# both really wait; each records whether runcmd (late pass) had run when it returned.
cat > "$DIR/usr/local/sbin/e2e-packer" <<'PACKER'
#!/bin/sh
r=/run/e2e-packer
echo "start-late=$(systemctl show -p SubState --value ci-agent-late.service)" > $r.tmp
out=$(cloud-init status --wait 2>&1); rc=$?
{ echo "rc=$rc"; echo "status=$(printf '%s\n' "$out" | tail -n 1)"; echo "runcmd=$(cat /var/tmp/e2e-runcmd 2>/dev/null)"; } >> $r.tmp
i=0
while [ ! -e /var/lib/cloud/instance/boot-finished ] && [ $i -lt 900 ]; do sleep 1; i=$((i+1)); done
echo "bf-runcmd=$(cat /var/tmp/e2e-runcmd 2>/dev/null)" >> $r.tmp
echo "result-errors=$(tr -d ' \n' < /run/cloud-init/result.json 2>/dev/null | sed -n 's/.*"errors":\(\[[^]]*\]\).*/\1/p')" >> $r.tmp
mv $r.tmp $r
PACKER
chmod 755 "$DIR/usr/local/sbin/e2e-packer"
cat > "$DIR/etc/systemd/system/e2e-packer.service" <<'UNIT'
[Unit]
Description=e2e: a Packer-style wait for cloud-init (answered by ci-agent)
After=ci-agent.service
Before=ci-agent-late.service
[Service]
Type=simple
ExecStart=/usr/local/sbin/e2e-packer
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/e2e-packer.service "$DIR/etc/systemd/system/multi-user.target.wants/e2e-packer.service"

# sshd logs to a file the report reads (-E): it waits there for the host's scan.
sed -i 's|^SSHD_OPTS=.*|SSHD_OPTS="-E /run/e2e-sshd.log"|' "$DIR/etc/default/ssh"
grep -q '^SSHD_OPTS="-E' "$DIR/etc/default/ssh" || die "could not set SSHD_OPTS in /etc/default/ssh"
# Template identity: what a freshly built template has before its first clone boots.
echo template > "$DIR/etc/hostname"
printf '/dev/vda1 / ext4 rw,errors=remount-ro 0 1\n' > "$DIR/etc/fstab"
sed -i 's/^root:[^:]*:/root::/' "$DIR/etc/shadow"   # console login for debugging (e2e.shell)
mkdir -p "$DIR/etc/systemd/network"
printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n' > "$DIR/etc/systemd/network/50-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$DIR/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# ifupdown is installed but not in use until the end of the first boot (e2e.ifupdown=switch)
rm -f "$DIR"/etc/systemd/system/*.target.wants/networking.service
[ -f "$DIR/etc/network/interfaces" ] || die "ifupdown did not install /etc/network/interfaces"
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
for f in /etc/ssh/ssh_host_*_key.pub; do echo "E2E: hostkey $(cut -d' ' -f1,2 "$f")"; done
# The host scans sshd through qemu's forward (from slirp's 10.0.2.2), then tries the user
# e2e-scans-done: wait for that before powering off (first boot only: the second has no
# forward)
i=0
if [ "$(cat /etc/ci-agent-e2e-boot 2>/dev/null)" != 2 ]; then
    until grep -q 'e2e-scans-done from 10\.0\.2\.2 ' /run/e2e-sshd.log 2>/dev/null || [ $i -ge 300 ]; do sleep 1; i=$((i+1)); done
fi
echo 2 > /etc/ci-agent-e2e-boot
echo "E2E: keyscan-seen=$(grep -c ' 10\.0\.2\.2 ' /run/e2e-sshd.log 2>/dev/null) after=${i}s"
i=0
while [ ! -e /run/e2e-packer ] && [ $i -lt 180 ]; do sleep 1; i=$((i+1)); done
sed 's/^/E2E: packer-/' /run/e2e-packer 2>/dev/null
cloud-init status --long 2>&1 | sed 's/^/E2E: ci-long | /'
# network: what the kernel has (JSON, one line each), resolv.conf, our files
echo "E2E: ipaddr=$(ip -j addr show 2>&1 | tr -d '\n')"
echo "E2E: iproute=$(ip -j route show 2>&1 | tr -d '\n')"
echo "E2E: resolv=$(grep -E '^(nameserver|search)' /etc/resolv.conf 2>&1 | tr '\n' ';')"
echo "E2E: netfiles=$(ls /etc/systemd/network | tr '\n' ' ')"
echo "E2E: template-dhcp=$(tr '\n' ';' < /etc/systemd/network/50-dhcp.network)"
# template settings (timezone, locale, ntp, ca_certs, mounts, swap)
echo "E2E: tz-abbrev=$(date +%Z)"
echo "E2E: timedatectl-tz=$(timedatectl show -p Timezone --value 2>&1)"
echo "E2E: timedatectl-ntp=$(timedatectl show -p NTP --value 2>&1)"
timedatectl 2>&1 | sed 's/^/E2E: timedatectl | /'
echo "E2E: timesyncd-conf=$(grep '^NTP=' /etc/systemd/timesyncd.conf.d/ci-agent.conf 2>&1)"
echo "E2E: locale-conf=$(grep '^LANG=' /etc/default/locale 2>&1)"
echo "E2E: locale-generated=$(locale -a 2>&1 | grep -ix 'en_US.utf8')"
echo "E2E: ca-subject=$(openssl x509 -noout -subject -nameopt RFC2253 -in /etc/ssl/certs/ci-agent-ca-0.pem 2>&1)"
echo "E2E: ca-in-bundle=$(grep -c "$(sed -n 2p /usr/local/share/ca-certificates/ci-agent-ca-0.crt 2>/dev/null)" /etc/ssl/certs/ca-certificates.crt 2>&1)"
echo "E2E: findmnt=$(findmnt -n -o SOURCE,FSTYPE,TARGET /mnt/e2edata 2>&1 | tr -s ' ')"
echo "E2E: data-marker=$(cat /mnt/e2edata/marker 2>&1)"
echo "E2E: swap=$(swapon --show=NAME,TYPE --noheadings 2>&1 | tr -s ' ' | tr '\n' ';')"
sed -n '/BEGIN ci-agent/,/END ci-agent/p' /etc/fstab | sed 's/^/E2E: fstab | /'
ci-agent status --json 2>&1 | sed 's/^/E2E: status | /'
journalctl -b --no-pager -o short-monotonic -u ci-agent.service -u ci-agent-late.service | tail -n 40 | sed 's/^/E2E: journal | /'
systemd-analyze time 2>&1 | sed 's/^/E2E: /'
systemd-analyze critical-chain ssh.service 2>&1 | sed 's/^/E2E: chain | /'
# The clone's root: partition 1 grown to the disk's end, ext4 grown to the partition.
fsbytes() { dumpe2fs -h /dev/vda1 2>/dev/null | awk -F: '/^Block count/{c=$2} /^Block size/{s=$2} END{printf "%d", c*s}'; }
echo "E2E: disk-bytes=$(lsblk -b -n -d -o SIZE /dev/vda)"
echo "E2E: part-bytes=$(lsblk -b -n -d -o SIZE /dev/vda1)"
echo "E2E: part-end=$(( $(cat /sys/class/block/vda1/start) + $(cat /sys/class/block/vda1/size) ))"
echo "E2E: root-findmnt=$(findmnt -n -o SOURCE,FSTYPE /)"
echo "E2E: df-bytes=$(df -B1 --output=size / | tail -n 1 | tr -d ' ')"
echo "E2E: fs-bytes=$(fsbytes)"
# A second pass, as every later boot runs it: nothing to grow, the table untouched.
sum() { dd if=/dev/vda bs=512 count=34 2>/dev/null | sha256sum | cut -c1-16; }
before=$(sum)
ci-agent run --stage early 2>&1 | grep -E 'growpart|resize_rootfs' | sed 's/^/E2E: again | /'
[ "$before" = "$(sum)" ] && echo "E2E: table-unchanged=yes" || echo "E2E: table-unchanged=no"
echo "E2E: fs-bytes-again=$(fsbytes)"
# ifupdown (the second boot's template): its files, units, and any trace of dhclient
echo "E2E: eni=$(tr '\n' ';' < /etc/network/interfaces 2>&1)"
echo "E2E: eni-ours=$(tr '\n' ';' < /etc/network/interfaces.d/50-ci-agent 2>&1)"
echo "E2E: networkd-active=$(systemctl is-active systemd-networkd.service)"
echo "E2E: networking=$(systemctl show -p ActiveState --value networking.service) $(systemctl show -p Result --value networking.service)"
echo "E2E: ifstate=$(ifquery --state 2>&1 | tr '\n' ' ')"
echo "E2E: dhclient=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -o 'dhclien[t][^ ]*' | tr '\n' ' ')$(ls /var/lib/dhcp/ 2>/dev/null | grep lease | tr '\n' ' ')"
echo "E2E: resolv-file=$(stat -c %F /etc/resolv.conf) $(head -n 1 /etc/resolv.conf)"
if grep -qw e2e.ifupdown=switch /proc/cmdline; then
    # The template moves to ifupdown for the next instance, as the Debian installer sets it
    # up: DHCP on the NIC, by its name, in /etc/network/interfaces.
    nic=$(grep -lx 52:54:00:12:34:56 /sys/class/net/*/address | cut -d/ -f5)
    systemctl disable systemd-networkd.service >/dev/null 2>&1
    systemctl enable networking.service >/dev/null 2>&1
    printf '\n# The primary network interface\nallow-hotplug %s\niface %s inet dhcp\n' "$nic" "$nic" >> /etc/network/interfaces
    echo "E2E: switched-to-ifupdown=$nic $(systemctl is-enabled systemd-networkd.service) $(systemctl is-enabled networking.service)"
fi
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
# The template: a GPT disk whose partition 1 holds that file system (1 MiB in, 1 GiB
# long, the backup GPT right after it). The clone: a qcow2 overlay on it, enlarged by
# 512 MiB as `qemu-img resize` enlarges a clone's disk (the README's recipe).
SECTORS=$(( $(stat -c %s "$IMG") / 512 ))
DISK=$WORK/template.raw; TEMPLATE=$WORK/template.qcow2; CLONE=$WORK/clone.qcow2
rm -f "$DISK" "$TEMPLATE" "$CLONE"; truncate -s $(( (2048 + SECTORS + 34) * 512 )) "$DISK"
printf 'label: gpt\nstart=2048, size=%d, type=linux\n' "$SECTORS" | sfdisk -q "$DISK" > "$OUT/sfdisk.log" 2>&1 \
    || { cat "$OUT/sfdisk.log" >&2; die "sfdisk could not partition the template"; }
dd if="$IMG" of="$DISK" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$IMG"
qemu-img convert -O qcow2 "$DISK" "$TEMPLATE"; rm -f "$DISK"
qemu-img create -q -f qcow2 -b "$TEMPLATE" -F qcow2 "$CLONE"
qemu-img resize -q "$CLONE" +512M
CLONE_BYTES=$(qemu-img info --output=json "$CLONE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
t1=$(date +%s)
log "rootfs image ready in $((t1 - t0))s"

# ---- 3. the seeds: the first by ci-seed with the clone's host keys, the second by ------
#         img-clone's genisoimage recipe (a new instance that brings no keys)
KEY1='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyOnlyForTheE2eHarnessAAAAAAAAAAAA e2e-key-1'
KEY2='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eSecondKeyForTheE2eHarnessAAAAAAAAAAAAA e2e-key-2'
S=$(mktemp -d "$WORK/distro-seed.XXXXXX")
# A throwaway CA for ca_certs, and a second virtio disk (ext4, label e2edata) for mounts.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=ci-agent e2e CA" -keyout "$S/ca.key" -out "$S/ca.pem" 2> "$OUT/openssl.log" \
    || die "openssl could not make the test CA (see $OUT/openssl.log)"
CA_PEM=$(sed 's/^/      /' "$S/ca.pem")
DATA=$WORK/data.img
mkdir -p "$S/data"; echo data-ok > "$S/data/marker"
rm -f "$DATA"; truncate -s 64M "$DATA"
mkfs.ext4 -q -F -L e2edata -d "$S/data" "$DATA"
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
timezone: Europe/Paris
locale: en_US.UTF-8
ntp:
  enabled: true
  servers: [10.0.2.2]
  pools: [0.debian.pool.ntp.org]
ca_certs:
  trusted:
    - |
$CA_PEM
mounts:
  - [LABEL=e2edata, /mnt/e2edata, ext4]
swap:
  filename: /swap.img
  size: 32M
EOF
# Only addresses of qemu's own slirp network (10.0.2.0/24, gateway .2, DNS .3; its DHCP
# hands out .15): the static address .20 proves DHCP did not also configure the NIC.
NIC_MAC=52:54:00:12:34:56   # qemu's default MAC for the first NIC
netcfg() { # ADDRESS
    cat <<NC
version: 2
ethernets:
  id0:
    match:
      macaddress: "$NIC_MAC"
    addresses: [$1/24]
    gateway4: 10.0.2.2
    nameservers:
      addresses: [10.0.2.3]
      search: [e2e.lab]
NC
}
netcfg 10.0.2.20 > "$S/network-config"
KNOWN=$OUT/known_hosts
printf 'e2e-distro ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldKeyOfThePreviousCloneAAAAAAAAAAAAAA\nother-host ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherHostKeepsItsLineAAAAAAAAAAAAAAAAAA\n' > "$KNOWN"
"$CISEED" --ssh-host-keys --known-hosts "$KNOWN" -H e2e-distro -I "iid-distro-$(date +%s%N)" \
    -N "$S/network-config" "$OUT/seed.iso" "$S/user-data" > "$OUT/ci-seed.log" 2>&1 \
    || { cat "$OUT/ci-seed.log" >&2; die "ci-seed --ssh-host-keys failed"; }
if [ "$SECOND" = 1 ]; then
    # The second instance: a new instance-id and another address, same disk.
    printf 'instance-id: iid-distro2-%s\nlocal-hostname: e2e-distro\n' "$(date +%s%N)" > "$S/meta-data"
    netcfg 10.0.2.21 > "$S/network-config"
    genisoimage -quiet -output "$OUT/seed2.iso" -volid cidata -joliet -rock -input-charset utf-8 "$S/user-data" "$S/meta-data" "$S/network-config"
fi
rm -rf "$S"

# ---- 4. boot ----------------------------------------------------------------------------
rc=0
boot() { # SEED LOG [KERNEL-ARGS [boot.sh args]] -> rc
    local r=0 seed=$1 log=$2 kargs=${3:-}; shift 2; [ $# -gt 0 ] && shift
    # The clone keeps its writes (--disk-keep): the second boot sees what the first wrote,
    # and the host reads the grown table afterwards. --persist: the data disk for mounts,
    # /dev/vdb after the root disk.
    E2E_GUEST=$GUEST "$HERE/boot.sh" --disk "$CLONE" --disk-format qcow2 --disk-keep --persist "$DATA" \
        --seed "$seed" --attach cdrom --timeout "$TIMEOUT" \
        --append "e2e.root=/dev/vda1${kargs:+ $kargs}" --log "$log.log" --quiet "$@" 2> "$log.err" || r=$?
    # (a getty prompt may still share a line with a report line: cut it off)
    tr -d '\r' < "$log.log" | sed -E 's/^.* login: (E2E: )/\1/' > "$log.txt"
    return $r
}
SWITCH=""; [ "$SECOND" = 1 ] && SWITCH=e2e.ifupdown=switch
# A free loopback port for the forward to the guest's sshd.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
boot "$OUT/seed.iso" "$OUT/serial" "$SWITCH" --hostfwd "$PORT:10.0.2.20" &
bootpid=$!
# Scan until sshd answers (slirp accepts and drops connections while sshd is not up yet),
# then once per type, one connection at a time (parallel scans under TCG lost keys here).
: > "$OUT/keyscan.txt"; : > "$OUT/keyscan.err"
scan() { ssh-keyscan -T 60 -t "$1" -p "$PORT" 127.0.0.1 2>> "$OUT/keyscan.err" | grep '^\[127\.0\.0\.1\]' >> "$OUT/keyscan.txt"; }
while kill -0 "$bootpid" 2>/dev/null; do
    scan ed25519 && break
    sleep 2
done
scan ecdsa || true
scan rsa || true   # the template's RSA key must be gone: any key here fails the check
# Tell the guest the scans are over: sshd logs this unknown user's attempt.
ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=60 -p "$PORT" e2e-scans-done@127.0.0.1 true > /dev/null 2>&1 || true
log "keyscan: $(grep -c '^\[127' "$OUT/keyscan.txt") keys after $(( $(date +%s) - t1 ))s"
wait "$bootpid" || rc=$?
log "boot rc=$rc in $(( $(date +%s) - t1 ))s (log $OUT/serial.txt)"
rc2=0
if [ "$SECOND" = 1 ]; then
    t2=$(date +%s)
    boot "$OUT/seed2.iso" "$OUT/serial2" || rc2=$?
    log "second boot (new instance-id) rc=$rc2 in $(( $(date +%s) - t2 ))s (log $OUT/serial2.txt)"
fi
rm -f "$DATA"
# The clone's table as the host's tools read it after the guest grew it.
sfdisk_rc=0; sgdisk_rc=0
qemu-img convert -O raw "$CLONE" "$WORK/clone.raw"
rm -f "$CLONE" "$TEMPLATE"
sfdisk --verify "$WORK/clone.raw" > "$OUT/clone-verify.txt" 2>&1 || sfdisk_rc=$?
sgdisk --verify "$WORK/clone.raw" >> "$OUT/clone-verify.txt" 2>&1 || sgdisk_rc=$?
sfdisk --dump "$WORK/clone.raw" >> "$OUT/clone-verify.txt" 2>&1 || true
rm -f "$WORK/clone.raw"

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
# Host keys: sshd presents exactly the keys ci-seed wrote in known_hosts for this clone;
# the other host's line is kept, the clone's old one is gone.
keys_of() { awk -v h="$1" '$1 == h {print $2, $3}' "$2" | sort; }
want_keys=$(keys_of e2e-distro "$KNOWN")
got_keys=$(keys_of "[127.0.0.1]:$PORT" "$OUT/keyscan.txt")
guest_keys=$(sed -n 's/^E2E: hostkey //p' "$T" | sort)
[ "$(awk '$1 == "e2e-distro"' "$KNOWN" | cut -d' ' -f2 | tr '\n' ' ')" = "ssh-ed25519 ecdsa-sha2-nistp256 " ] \
    || bad "known_hosts has for e2e-distro: $(awk '$1 == "e2e-distro" {print $2}' "$KNOWN" | tr '\n' ' ')(want ed25519 and ecdsa from ci-seed)"
grep -q '^other-host ' "$KNOWN" || bad "ci-seed dropped another host's known_hosts line"
! grep -q 'OldKeyOfThePreviousClone' "$KNOWN" || bad "ci-seed kept the clone's old known_hosts line"
[ -n "$got_keys" ] || bad "ssh-keyscan -p $PORT 127.0.0.1 got no key (see $OUT/keyscan.err)"
[ "$got_keys" = "$want_keys" ] || bad "sshd presents keys other than known_hosts': got [$got_keys], want [$want_keys]"
[ "$guest_keys" = "$want_keys" ] || bad "the guest's /etc/ssh host keys are [$guest_keys], want the seed's [$want_keys]"
grep -q '^E2E: keyscan-seen=[1-9]' "$T" || bad "the guest's sshd logged no connection from the host's scan"
grep -qxF "E2E: ak alice | $KEY2" "$T" || bad "alice lacks e2e-key-2"
case " $(val 'groups alice') " in *" sudo "*) ;; *) bad "alice not in sudo: $(val 'groups alice')" ;; esac
[ "$(val runcmd)" = late-ok ] || bad "runcmd marker is '$(val runcmd)'"
# Packer-style `cloud-init status --wait` and a boot-finished poll, answered by ci-agent.
case "$(val packer-start-late)" in
    dead|inactive) ;;
    *) bad "the Packer-style wait started when ci-agent-late was '$(val packer-start-late)', not before it" ;;
esac
[ "$(val packer-rc)" = 0 ] || bad "cloud-init status --wait exited '$(val packer-rc)', want 0"
[ "$(val packer-status)" = "status: done" ] || bad "cloud-init status --wait said '$(val packer-status)'"
[ "$(val packer-runcmd)" = late-ok ] || bad "cloud-init status --wait returned before the late pass's runcmd ('$(val packer-runcmd)')"
[ "$(val packer-bf-runcmd)" = late-ok ] || bad "boot-finished appeared before the late pass's runcmd ('$(val packer-bf-runcmd)')"
[ "$(val packer-result-errors)" = "[]" ] || bad "/run/cloud-init/result.json errors: '$(val packer-result-errors)'"
st=$(sed -n 's/^E2E: status | //p' "$T" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null || true)
[ "$st" = done ] || bad "ci-agent status --json: status is '$st', want 'done'"

# Growth: the partition ends where the disk's last usable sector does (GPT: 34 sectors
# before the end), the kernel and ext4 see the new size, a second pass changed nothing.
check_growth() { # LOG
    local T=$1 disk part fs df
    disk=$(val disk-bytes); part=$(val part-bytes); fs=$(val fs-bytes); df=$(val df-bytes)
    [ "$disk" = "$CLONE_BYTES" ] || bad "$T: the guest sees a disk of '$disk' bytes, the clone has $CLONE_BYTES"
    [ "$(val part-end)" = $(( CLONE_BYTES / 512 - 33 )) ] || bad "$T: partition 1 ends before sector '$(val part-end)', want $(( CLONE_BYTES / 512 - 33 )) (the end of the disk)"
    [ "$part" = $(( (CLONE_BYTES / 512 - 33 - 2048) * 512 )) ] || bad "$T: the kernel's size of vda1 is '$part' bytes"
    [ "$(val root-findmnt)" = "/dev/vda1 ext4" ] || bad "$T: findmnt / is '$(val root-findmnt)'"
    if [ -z "$fs" ] || [ -z "$part" ] || [ "$fs" -gt "$part" ] || [ $(( part - fs )) -ge $(( 1 << 20 )) ]; then
        bad "$T: ext4 is '$fs' bytes on a partition of '$part' bytes (not grown to it)"
    fi
    [ -n "$df" ] && [ "$df" -gt $(( 1300 << 20 )) ] || bad "$T: df says / is '$df' bytes, want more than 1300 MiB"
    [ "$(val table-unchanged)" = yes ] || bad "$T: the second pass rewrote the partition table"
    [ "$(val fs-bytes-again)" = "$fs" ] || bad "$T: the second pass changed ext4's size ('$(val fs-bytes-again)' vs '$fs')"
    grep -q '^E2E: again | .*growpart: .*less than 1 MiB' "$T" || bad "$T: the second pass did not log growpart's no-change"
    grep -q '^E2E: again | .*resize_rootfs: .*already fills' "$T" || bad "$T: the second pass did not log resize_rootfs's no-change"
}
check_growth "$T"
# The early unit's own lines on the console.
grep -q 'ci-agent: growpart: grew /dev/vda1 (partition 1 of /dev/vda, gpt)' "$T" || bad "the first boot's console has no 'growpart: grew /dev/vda1'"
grep -q 'ci-agent: resize_rootfs: resize2fs /dev/vda1' "$T" || bad "the first boot's console has no 'resize_rootfs: resize2fs /dev/vda1'"
if [ "$sfdisk_rc" != 0 ] || ! grep -q 'No errors detected' "$OUT/clone-verify.txt"; then
    bad "sfdisk --verify of the grown clone failed (see $OUT/clone-verify.txt)"
fi
if [ "$sgdisk_rc" != 0 ] || ! grep -q 'No problems found' "$OUT/clone-verify.txt"; then
    bad "sgdisk --verify of the grown clone failed (see $OUT/clone-verify.txt)"
fi
! grep -qE 'mismatch|not on the end|corrupt' "$OUT/clone-verify.txt" || bad "the host's tools find fault with the grown table (see $OUT/clone-verify.txt)"

# The network, as the guest's kernel sees it: LOG ADDRESS [OLD [eni]]
check_net() {
    local log=$1 want=$2 old=${3:-} mode=${4:-networkd} out
    out=$(python3 - "$log" "$NIC_MAC" "$want" "$old" "$mode" <<'PY'
import json, sys
log, mac, want, old, mode = sys.argv[1:6]
vals = {}
for line in open(log, errors="replace"):
    for k in ("ipaddr", "iproute", "resolv", "netfiles", "template-dhcp", "eni", "eni-ours",
              "networkd-active", "networking", "dhclient", "resolv-file"):
        p = "E2E: %s=" % k
        if line.startswith(p) and k not in vals:
            vals[k] = line[len(p):].rstrip("\n")
bad = []
try:
    links = json.loads(vals.get("ipaddr", "[]"))
    routes = json.loads(vals.get("iproute", "[]"))
except ValueError as e:
    print("ip -j output does not parse: %s" % e); sys.exit(0)
nic = [l for l in links if l.get("address") == mac]
if len(nic) != 1:
    print("no single link with MAC %s: %s" % (mac, [l.get("ifname") for l in links])); sys.exit(0)
nic = nic[0]
v4 = ["%s/%s" % (a["local"], a["prefixlen"]) for a in nic.get("addr_info", []) if a.get("family") == "inet"]
if v4 != [want + "/24"]:
    bad.append("%s has IPv4 %s, want exactly %s/24 (no DHCP 10.0.2.15%s)" % (nic["ifname"], v4, want, ", no " + old if old else ""))
dyn = [a["local"] for a in nic.get("addr_info", []) if a.get("family") == "inet" and a.get("dynamic")]
if dyn:
    bad.append("dynamic (DHCP) IPv4 addresses on %s: %s" % (nic["ifname"], dyn))
defaults = [r for r in routes if r.get("dst") == "default"]
if [(r.get("gateway"), r.get("dev")) for r in defaults] != [("10.0.2.2", nic["ifname"])]:
    bad.append("default routes %s, want exactly via 10.0.2.2 dev %s" % (defaults, nic["ifname"]))
if any(r.get("protocol") == "dhcp" for r in routes):
    bad.append("routes from DHCP: %s" % [r for r in routes if r.get("protocol") == "dhcp"])
resolv = vals.get("resolv", "")
if "nameserver 10.0.2.3;" not in resolv or "search e2e.lab;" not in resolv:
    bad.append("resolv.conf is %r, want nameserver 10.0.2.3 and search e2e.lab" % resolv)
if "DHCP=ipv4" not in vals.get("template-dhcp", ""):
    bad.append("the template's 50-dhcp.network changed: %r" % vals.get("template-dhcp"))
files = vals.get("netfiles", "").split()
if vals.get("dhclient", "").strip():
    bad.append("dhclient ran: %r" % vals.get("dhclient"))
if not vals.get("resolv-file", "").startswith("regular file # ci-agent:"):
    bad.append("/etc/resolv.conf is not the agent's regular file: %r" % vals.get("resolv-file"))
if mode == "networkd":
    if files != ["05-ci-agent-id0.network", "50-dhcp.network"]:
        bad.append("/etc/systemd/network holds %s" % files)
    if vals.get("networkd-active") != "active":
        bad.append("systemd-networkd is %r" % vals.get("networkd-active"))
else:
    # ifupdown: networkd off and our networkd file gone; the template's DHCP stanza
    # commented out, not deleted; ours in interfaces.d; networking.service succeeded.
    n = nic["ifname"]
    if files != ["50-dhcp.network"]:
        bad.append("/etc/systemd/network holds %s (the first instance's file must be gone)" % files)
    if vals.get("networkd-active") == "active":
        bad.append("systemd-networkd is active on the ifupdown template")
    eni = vals.get("eni", "")
    if "#ci-agent# allow-hotplug %s;#ci-agent# iface %s inet dhcp;" % (n, n) not in eni:
        bad.append("the template's DHCP stanza for %s is not commented out: %r" % (n, eni))
    ours = vals.get("eni-ours", "")
    for want_line in ("auto %s;" % n, "iface %s inet static;" % n,
                      "    address %s/24;" % want, "    gateway 10.0.2.2;"):
        if want_line not in ours:
            bad.append("interfaces.d/50-ci-agent lacks %r: %r" % (want_line, ours))
    if vals.get("networking") != "active success":
        bad.append("networking.service is %r, want 'active success'" % vals.get("networking"))
print("; ".join(bad))
PY
)
    [ -z "$out" ] || bad "network ($log): $out"
}
check_net "$T" 10.0.2.20
# template settings (first boot)
case "$(val tz-abbrev)" in CET|CEST) ;; *) bad "date +%Z is '$(val tz-abbrev)', want CET/CEST (timezone Europe/Paris)" ;; esac
[ "$(val timedatectl-tz)" = Europe/Paris ] || bad "timedatectl Timezone is '$(val timedatectl-tz)'"
[ "$(val timedatectl-ntp)" = yes ] || bad "timedatectl NTP is '$(val timedatectl-ntp)', want yes (systemd-timesyncd enabled)"
[ "$(val timesyncd-conf)" = "NTP=10.0.2.2 0.debian.pool.ntp.org" ] || bad "timesyncd drop-in: '$(val timesyncd-conf)'"
[ "$(val locale-conf)" = LANG=en_US.UTF-8 ] || bad "/etc/default/locale: '$(val locale-conf)'"
[ -n "$(val locale-generated)" ] || bad "en_US.UTF-8 was not generated (locale -a)"
[ "$(val ca-subject)" = "subject=CN=ci-agent e2e CA" ] || bad "CA in /etc/ssl/certs: '$(val ca-subject)'"
[ "$(val ca-in-bundle)" = 1 ] || bad "CA in ca-certificates.crt: '$(val ca-in-bundle)'"
[ "$(val findmnt)" = "/dev/vdb ext4 /mnt/e2edata" ] || bad "findmnt /mnt/e2edata: '$(val findmnt)'"
[ "$(val data-marker)" = data-ok ] || bad "data disk marker: '$(val data-marker)'"
[ "$(val swap)" = "/swap.img file;" ] || bad "swapon --show: '$(val swap)', want /swap.img active"
if [ "$SECOND" = 1 ]; then
    T2=$OUT/serial2.txt
    [ "$rc2" = 0 ] || bad "second boot did not reach E2E: DONE (boot.sh rc=$rc2)"
    [ "$(sed -n 's/^E2E: unit ci-agent Result=//p' "$T2" | head -n 1)" = success ] || bad "second boot: ci-agent.service failed"
    # The template switched to ifupdown at the end of the first boot.
    [ -n "$(sed -n 's/^E2E: switched-to-ifupdown=\([^ ]*\) disabled enabled$/\1/p' "$T" | head -n 1)" ] \
        || bad "the first boot did not switch the template to ifupdown: '$(val switched-to-ifupdown)'"
    check_net "$T2" 10.0.2.21 10.0.2.20 eni
    # The same disk: the agent undid the first instance's rendering before its own.
    grep -q "previous instance's network config: removed /etc/systemd/network/05-ci-agent-id0.network" "$T2" \
        || bad "second boot: no sign that the first instance's network file was removed"
    grep -q "previous instance's network config: restored /etc/resolv.conf" "$T2" \
        || bad "second boot: the template's resolv.conf was not restored before the new one"
    # The second boot of the grown clone: nothing left to grow.
    check_growth "$T2"
    ! grep -q 'ci-agent: growpart: grew' "$T2" || bad "the second boot grew a partition again"
    ! grep -q 'ci-agent: resize_rootfs: resize2fs' "$T2" || bad "the second boot ran resize2fs again"
    iid2=$(sed -n 's/^E2E: status | //p' "$T2" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("instance_id",""))' 2>/dev/null || true)
    case "$iid2" in iid-distro2-*) ;; *) bad "second boot: status instance_id is '$iid2'" ;; esac
fi
log "total $(( $(date +%s) - t0 ))s"
[ "$n" = 0 ] || exit 1
echo "distro: all assertions hold"
