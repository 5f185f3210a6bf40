#!/usr/bin/env bash
# First boot under qemu, ci-agent vs Debian 12's cloud-init, in ONE debootstrapped bookworm
# image holding both (issue 8, item 4). Same kernel, initramfs, qemu flags, image and seed
# (the standard seed on an IDE cdrom); the variant is chosen on the kernel command line:
#   ci     cloud-init runs, `ci-agent=disabled` (our units' ConditionKernelCommandLine)
#   agent  ci-agent runs, `cloud-init=disabled` (cloud-init's generator skips its units)
#   agentkeys  as agent, with the seed made by `ci-seed --ssh-host-keys` (the agent makes
#          no host key; the host checks the key against ci-seed's known_hosts)
#   base   both disabled: what the same VM costs with no first-boot provisioning; it is
#          also the time-to-SSH floor (sshd has the template's keys, a `floor` user the key)
# Every boot is a first boot (boot.sh --disk attaches the image with snapshot=on).
# Time to SSH: qemu forwards 127.0.0.1:PORT (loopback only) to the guest's port 22 and
# ssh_wait.py records the first successful `ssh -i KEY USER@127.0.0.1 -p PORT true` after
# qemu's start (USER: deploy from the seed, floor for base). The seed is the standard one
# with the bench's own public key in place of the anchor's.
#
#   scripts/bench/vm.sh base                  debootstrap the tree (cached; ~2 min, network)
#   scripts/bench/vm.sh image [--deb FILE]    tree + our .deb + report unit -> one ext4 image
#   scripts/bench/vm.sh run [--runs N] [--variants ci,agent,agentkeys,base] [--first K]
#                                             N boots of each variant, alternating
#   scripts/bench/vm.sh parse                 print the markdown tables from the serial logs
#
# Work dir: $VM_WORK (default /tmp/ci-bench-vm). Needs root, debootstrap, e2fsprogs, qemu and
# the project's e2e harness (tests/e2e/build-guest.sh, boot.sh); the .deb comes from
# packaging/check-deb.sh unless --deb is given. The report unit prints, per unit, systemd's
# CPUUsageNSec and timestamps and the cgroup's memory.peak (saved by a helper at the end of
# the unit; the helper's own cost is measured by a control unit, `e2e-floor`, every boot).
# VM_LOCK=FILE: take `flock FILE` around each boot (not the whole run), so that other qemu
# users of the machine interleave with the bench instead of running at the same time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${VM_WORK:-/tmp/ci-bench-vm}
BASE=$WORK/base
IMG=$WORK/rootfs.img
RUNS_DIR=$WORK/runs
# the cloud-init anchor's package set: cloud-init's Recommends spelled out (debootstrap
# resolves Depends only) and python3-cffi-backend (a virtual-package dependency it cannot resolve)
INCLUDE=systemd-sysv,udev,kmod,iproute2,cloud-init,openssh-server,sudo,cloud-guest-utils,eatmydata,python3-cffi-backend
E2E=${E2E_HARNESS:-$REPO/tests/e2e}   # boot.sh + build-guest.sh (the reference harness has the same interface)
log() { echo "[vm] $*" >&2; }
die() { echo "vm.sh: $*" >&2; exit 1; }

cmd=${1:-}; shift || true

do_base() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap)"
    if [ -f "$BASE/.complete" ] && [ "$(cat "$BASE/.complete")" = "$INCLUDE" ]; then log "base tree cached: $BASE"; return; fi
    rm -rf "$BASE"; mkdir -p "$WORK"
    MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    log "debootstrap bookworm ($INCLUDE) from $MIRROR"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$BASE" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$BASE"/var/cache/apt/archives/*.deb "$BASE"/var/lib/apt/lists/*
    echo "$INCLUDE" > "$BASE/.complete"
}

do_image() {
    local deb=""
    while [ $# -gt 0 ]; do
        case "$1" in --deb) deb=$2; shift 2 ;; *) die "image: unknown arg $1" ;; esac
    done
    [ -f "$BASE/.complete" ] || do_base
    if [ "$deb" = none ]; then
        log "no .deb (harness trial: only the ci and base variants mean anything)"
    elif [ -z "$deb" ]; then
        log "building the .deb (packaging/check-deb.sh)"
        deb=$("$REPO/packaging/check-deb.sh" 2> "$WORK/check-deb.log" | tail -n 1) \
            || { tail -n 20 "$WORK/check-deb.log" >&2; die "check-deb.sh failed"; }
    fi
    [ "$deb" = none ] || [ -f "$deb" ] || die "no .deb at '$deb'"
    local DIR=$WORK/rootfs
    rm -rf "$DIR"; cp -a "$BASE" "$DIR"; rm -f "$DIR/.complete"
    # the bench's client key: the seed gives it to deploy, the image to `floor` (base variant)
    mkdir -p "$WORK/ssh"
    [ -f "$WORK/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C ci-agent-bench -f "$WORK/ssh/id_ed25519"
    chroot "$DIR" useradd -m -s /bin/sh floor
    install -d -m 700 "$DIR/home/floor/.ssh"
    install -m 600 "$WORK/ssh/id_ed25519.pub" "$DIR/home/floor/.ssh/authorized_keys"
    chroot "$DIR" chown -R floor:floor /home/floor/.ssh
    ls "$DIR"/etc/ssh/ssh_host_*_key > /dev/null 2>&1 || die "the template has no SSH host keys (the floor needs them)"
    if [ "$deb" != none ]; then
        dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/ci-seed > "$WORK/ci-seed"
        chmod 755 "$WORK/ci-seed"
        cp "$deb" "$DIR/tmp/ci-agent.deb"
        # the package Conflicts with cloud-init (one provisioner per template); this bench
        # wants both in one image, chosen per boot on the kernel command line
        chroot "$DIR" dpkg -i --force-conflicts /tmp/ci-agent.deb > "$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; die "dpkg -i failed"; }
        rm -f "$DIR/tmp/ci-agent.deb"
        dpkg-deb -f "$deb" Version > "$WORK/deb-version"
        git -C "$REPO" rev-parse --short HEAD > "$WORK/commit" 2>/dev/null || echo "?" > "$WORK/commit"
    else
        echo none > "$WORK/deb-version"
    fi

    # template identity and console, as tests/e2e/distro.sh and the cloud-init anchor do
    echo template > "$DIR/etc/hostname"
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$DIR/etc/fstab"
    sed -i 's/^root:[^:]*:/root::/' "$DIR/etc/shadow"
    mkdir -p "$DIR/etc/systemd/network"
    printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n' > "$DIR/etc/systemd/network/50-dhcp.network"
    ln -sf /lib/systemd/system/systemd-networkd.service "$DIR/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    # cloud-init: NoCloud only, C.UTF-8 (see the anchor: cc_locale fails on a minbase without it)
    printf 'datasource_list: [ NoCloud, None ]\n' > "$DIR/etc/cloud/cloud.cfg.d/90-ds.cfg"
    printf 'LANG=C.UTF-8\n' > "$DIR/etc/default/locale"
    printf '# emptied: the test guest has no network access\n' > "$DIR/etc/apt/sources.list"
    # sshd logs to a file (-E) the report reads: it waits for the host's login there
    sed -i 's|^SSHD_OPTS=.*|SSHD_OPTS="-E /run/e2e-sshd.log"|' "$DIR/etc/default/ssh"

    # accounting for every unit
    mkdir -p "$DIR/etc/systemd/system.conf.d"
    printf '[Manager]\nDefaultCPUAccounting=yes\nDefaultMemoryAccounting=yes\nDefaultTasksAccounting=yes\n' \
        > "$DIR/etc/systemd/system.conf.d/90-e2e-accounting.conf"
    # systemd 252 has no MemoryPeak property and prunes a finished unit's cgroup: save the
    # cgroup's memory.peak (and CPU so far) from inside the unit, at its end
    # Shell builtins only (one dash process, no sed/cat/mkdir): under TCG every exec costs
    # tens of ms, and the e2e-floor unit measures what is left.
    cat > "$DIR/usr/local/sbin/e2e-mempeak" <<'EOF'
#!/bin/sh
cg=
while IFS= read -r l; do case $l in 0::*) cg=${l#0::} ;; esac; done < /proc/self/cgroup
peak=; read -r peak < "/sys/fs/cgroup$cg/memory.peak" || true
usage=
while read -r k v; do [ "$k" = usage_usec ] && usage=$v; done < "/sys/fs/cgroup$cg/cpu.stat"
echo "peak=$peak usage_usec=$usage" > "/run/e2e-$1.mem"
EOF
    # Type=exec units (ci-agent-late) end long after ExecStartPost: wrap the command instead
    cat > "$DIR/usr/local/sbin/e2e-wrap" <<'EOF'
#!/bin/sh
# sources the helper: one dash process around the agent, as e2e-floor has one after /bin/true
u=$1; shift
"$@"; rc=$?
set -- "$u"
. /usr/local/sbin/e2e-mempeak
exit $rc
EOF
    chmod 755 "$DIR/usr/local/sbin/e2e-mempeak" "$DIR/usr/local/sbin/e2e-wrap"
    for u in cloud-init-local cloud-init cloud-config cloud-final ci-agent e2e-floor; do
        mkdir -p "$DIR/etc/systemd/system/$u.service.d"
        printf '[Service]\nExecStartPost=-/usr/local/sbin/e2e-mempeak %%n\n' > "$DIR/etc/systemd/system/$u.service.d/90-e2e-mempeak.conf"
    done
    local late_exec="" unit
    for unit in "$DIR"/lib/systemd/system/ci-agent-late.service "$DIR"/usr/lib/systemd/system/ci-agent-late.service; do
        if [ -f "$unit" ]; then late_exec=$(sed -n 's/^ExecStart=//p' "$unit" | head -n 1); fi
    done
    if [ -n "$late_exec" ]; then
        mkdir -p "$DIR/etc/systemd/system/ci-agent-late.service.d"
        printf '[Service]\nExecStart=\nExecStart=/usr/local/sbin/e2e-wrap %%n %s\n' "$late_exec" \
            > "$DIR/etc/systemd/system/ci-agent-late.service.d/90-e2e-mempeak.conf"
    elif [ "$deb" != none ]; then
        die "the .deb installed no ci-agent-late.service"
    fi
    # control: the helper's own cost (a oneshot doing nothing but /bin/true + the helper)
    cat > "$DIR/etc/systemd/system/e2e-floor.service" <<'EOF'
[Unit]
Description=e2e: cost of the measuring helper alone
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/e2e-floor.service "$DIR/etc/systemd/system/multi-user.target.wants/e2e-floor.service"

    # report: after both provisioners (each may be absent), then power off
    cat > "$DIR/etc/systemd/system/e2e-report.service" <<'EOF'
[Unit]
Description=e2e: report boot figures on the serial console, then power off
DefaultDependencies=no
Requires=sysinit.target
After=sysinit.target basic.target multi-user.target cloud-final.service ci-agent-late.service e2e-floor.service
Conflicts=shutdown.target
Before=shutdown.target
[Service]
Type=simple
ExecStart=/usr/local/sbin/e2e-report
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/e2e-report.service "$DIR/etc/systemd/system/multi-user.target.wants/e2e-report.service"
    cat > "$DIR/usr/local/sbin/e2e-report" <<'EOF'
#!/bin/sh
systemctl is-system-running --wait >/dev/null 2>&1
# ci-agent-late is Type=exec: the boot does not wait for it, we do
i=0
while [ $i -lt 300 ] && systemctl -q is-enabled ci-agent-late.service 2>/dev/null; do
    case "$(systemctl show -p SubState --value ci-agent-late.service)" in exited|dead|failed) break ;; esac
    sleep 1; i=$((i+1))
done
READY=$(cut -d' ' -f1 /proc/uptime); STAT=$(head -1 /proc/stat)
# the host's ssh through the forward must have got in before we power off (at most 300 s)
i=0
until grep -q 'Accepted publickey' /run/e2e-sshd.log 2>/dev/null || [ $i -ge 300 ]; do sleep 1; i=$((i+1)); done
SSHLOGIN=$(grep -c 'Accepted publickey' /run/e2e-sshd.log 2>/dev/null)
exec >/dev/ttyS0 2>&1
echo
p() { sed "s/^/E2E: $1/"; }
echo "E2E: ready uptime=$READY state=$(systemctl is-system-running) cmdline=$(tr ' ' '\n' < /proc/cmdline | grep -E '^(cloud-init|ci-agent)=' | tr '\n' ' ')"
echo "E2E: procstat $STAT"
echo "E2E: ssh-login accepted=$SSHLOGIN waited=${i}s"
systemd-analyze time --no-pager 2>&1 | p "time "
systemd-analyze blame --no-pager 2>&1 | head -12 | p "blame "
for u in cloud-init-local cloud-init cloud-config cloud-final ci-agent ci-agent-late e2e-floor ssh; do
    echo "E2E: unit $u $(systemctl show -p ActiveState -p Result -p CPUUsageNSec \
        -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic -p InactiveEnterTimestampMonotonic \
        -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic $u.service | tr '\n' ' ')$(cat /run/e2e-$u.service.mem 2>/dev/null)"
done
echo "E2E: cgroup system.slice $(grep usage_usec /sys/fs/cgroup/system.slice/cpu.stat)"
systemctl --failed --no-legend --no-pager --plain | p "failed "
echo "E2E: check hostname=$(hostname) etc_hostname=$(cat /etc/hostname)"
echo "E2E: check runcmd_file=$(cat /var/tmp/anchor.txt 2>&1)"
echo "E2E: check write_files=$(cat /etc/anchor/written.txt 2>&1)"
for u in debian deploy; do
    echo "E2E: check user $u passwd=[$(getent passwd $u)] groups=[$(id -nG $u 2>&1)] authorized_keys=$(grep -c ssh-ed25519 /home/$u/.ssh/authorized_keys 2>/dev/null || echo 0) pwhash=$(getent shadow $u | cut -d: -f2 | cut -c1-3)"
done
echo "E2E: check sshd $(sshd -T 2>/dev/null | grep -i '^passwordauthentication') ssh=$(systemctl is-active ssh)"
ls -l --time-style=+%s /etc/ssh/ssh_host_*_key.pub 2>&1 | p "check hostkey "
echo "E2E: DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
systemctl poweroff --no-block
EOF
    chmod 755 "$DIR/usr/local/sbin/e2e-report"
    rm -f "$IMG"; truncate -s 1G "$IMG"
    mkfs.ext4 -q -F -L rootfs -d "$DIR" "$IMG"
    cloud_ver=$(sed -n 's/^__VERSION__ = "\(.*\)"/\1/p' "$DIR/usr/lib/python3/dist-packages/cloudinit/version.py")
    echo "$cloud_ver" > "$WORK/cloud-init-version"
    rm -rf "$DIR"
    log "image $IMG (ci-agent $(cat "$WORK/deb-version"), cloud-init $cloud_ver)"
}

do_run() {
    local runs=3 variants=ci,agent,agentkeys,base first=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --runs) runs=$2; shift 2 ;;
            --variants) variants=$2; shift 2 ;;
            --first) first=$2; shift 2 ;;
            *) die "run: unknown arg $1" ;;
        esac
    done
    [ -f "$IMG" ] || die "no image: run 'vm.sh image' first"
    [ -x "$E2E/boot.sh" ] && [ -x "$E2E/build-guest.sh" ] || die "needs the e2e harness in $E2E"
    local GUEST=$WORK/guest
    if [ ! -f "$GUEST/initrd.gz" ]; then
        log "build-guest.sh"
        "$E2E/build-guest.sh" --out "$GUEST" --cache "$WORK/kernel-cache" > "$WORK/build-guest.log" 2>&1 || { tail -20 "$WORK/build-guest.log" >&2; die "build-guest.sh failed"; }
    fi
    mkdir -p "$RUNS_DIR"
    local SEED=$RUNS_DIR/seed.iso KSEED=$RUNS_DIR/seed-keys.iso KH=$RUNS_DIR/known_hosts
    local KEY=$WORK/ssh/id_ed25519 UD=$RUNS_DIR/user-data
    [ -f "$KEY" ] || die "no bench key $KEY: run 'vm.sh image' first"
    # the standard seed, with the bench's key in place of the anchor's (same number of keys)
    sed "s|ssh-ed25519 [A-Za-z0-9+/=]* anchor@e2e|$(cut -d' ' -f1,2 "$KEY.pub") anchor@e2e|" \
        "$REPO/benches/fixtures/standard-seed/user-data" > "$UD"
    # the reference seed image (cloud-localds = genisoimage -joliet -rock), for ci and agent
    cloud-localds "$SEED" "$UD" "$REPO/benches/fixtures/standard-seed/meta-data"
    # agentkeys: the same seed by ci-seed, plus the clone's host keys (ed25519, ecdsa)
    case ",$variants," in *,agentkeys,*)
        [ -x "$WORK/ci-seed" ] || die "no $WORK/ci-seed (vm.sh image with a .deb)"
        rm -f "$KH"
        "$WORK/ci-seed" --ssh-host-keys --known-hosts "$KH" -H anchor-vm -I anchor-0001 "$KSEED" "$UD" ;;
    esac
    command -v ssh > /dev/null || die "needs ssh (openssh-client)"
    for i in $(seq "$first" $((first + runs - 1))); do
        for v in ${variants//,/ }; do
            local seed=$SEED user=deploy check=()
            case "$v" in
                ci) extra="ci-agent=disabled" ;;
                agent) extra="cloud-init=disabled" ;;
                agentkeys) extra="cloud-init=disabled"; seed=$KSEED; check=(--known-hosts "$KH" --alias anchor-vm) ;;
                base) extra="ci-agent=disabled cloud-init=disabled"; user=floor ;;
                *) die "unknown variant $v" ;;
            esac
            local out=$RUNS_DIR/$v-$i.log port lock=()
            port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            [ -z "${VM_LOCK:-}" ] || lock=(flock "$VM_LOCK")
            rm -f "$out.ssh" "$out.stop"
            "${PY:-/usr/bin/python3}" "$HERE/ssh_wait.py" --port "$port" --user "$user" --key "$KEY" \
                --out "$out.ssh" --stop "$out.stop" --max 7200 "${check[@]}" &
            local waiter=$!
            TIMEFORMAT='qemu_cpu user=%U sys=%S real=%R'
            : > "$out.boot"
            # the load is read once the lock is held, right before qemu starts
            { time "${lock[@]}" env E2E_GUEST="$GUEST" OUT="$out" bash -c '
                { echo "load $(cut -d" " -f1-3 /proc/loadavg)"; echo "uptime $(uptime)"; echo "hoststat0 $(head -1 /proc/stat)"; } >> "$OUT.boot"
                exec "$@"' _ "$E2E/boot.sh" --disk "$IMG" --seed "$seed" --attach cdrom --timeout 600 \
                --append "e2e.root=/dev/vda $extra" --log "$out" --quiet --hostfwd "$port" 2>> "$out.boot"; } 2>> "$out.boot" || true
            { echo "hoststat1 $(head -1 /proc/stat)"; echo "load1 $(cut -d' ' -f1-3 /proc/loadavg)"; } >> "$out.boot"
            touch "$out.stop"; wait "$waiter" || true; rm -f "$out.stop"
            log "$v-$i: $(grep -o 'wall_ms=[0-9]*' "$out.boot" || echo 'no wall') $(grep -c 'E2E: DONE' "$out" || true) done-lines, $(cat "$out.ssh" 2>/dev/null)"
        done
    done
}

case "$cmd" in
    base) do_base "$@" ;;
    image) do_image "$@" ;;   # --deb none: no ci-agent (harness trial)
    run) do_run "$@" ;;
    parse) "${PY:-/usr/bin/python3}" "$HERE/vm_report.py" "$RUNS_DIR" "$WORK" ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
esac
