#!/bin/sh
# /init of the e2e initramfs (PID 1, busybox ash).
#
# Brings up what a booted system has (proc/sys/dev, drivers, a writable /, network),
# then runs the real static agent exactly as a boot unit would: `ci-agent run` with no
# --seed and no --root, so it must find the seed device itself. Afterwards it prints
# what the harness asserts on, as lines starting with "E2E:", and powers off.
#
# Kernel command line knobs (all optional):
#   e2e.conf=NAME     copy /etc/e2e/NAME.conf to /etc/ci-agent.conf before the run
#   e2e.persist=1     mount the ext4 disk labelled e2epersist and bind its root/ and var/
#                     over /root and /var (state that survives a reboot)
#   e2e.net=0         no network (default: slirp static 10.0.2.15/24 via 10.0.2.2)
#   e2e.agent_timeout=N  kill the agent after N seconds (default 240)
#   e2e.root=/dev/vdX load drivers, mount it (ext4) and switch_root to its /sbin/init
#                     (full-distro variant); e2e.rootwait=N seconds (20)
#   e2e.shell=1       drop to a shell on the console at the end instead of powering off
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "E2E: $*"; }
log "init start uptime=$(up) kernel=$(uname -r)"

arg() { # arg NAME DEFAULT -> value of NAME=... on the kernel command line
    v=$2
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1="*) v=${w#*=} ;; esac
    done
    echo "$v"
}

# --- drivers, in the dependency order computed at build time ---------------
KV=$(uname -r)
nfail=0
while read -r m; do
    [ -n "$m" ] || continue
    if ! out=$(insmod "/lib/modules/$KV/$m" 2>&1); then
        case "$out" in
            *"File exists"*) ;;
            *"No such device"*) ;;   # e.g. crc32c-intel without SSE4.2 under TCG
            *) nfail=$((nfail+1)); log "insmod $m failed: $out" ;;
        esac
    fi
done < /etc/e2e-modules.order
log "modules loaded uptime=$(up) failures=$nfail"

ROOT=$(arg e2e.root "")
if [ -n "$ROOT" ]; then
    i=0; while [ ! -b "$ROOT" ] && [ $i -lt $(( $(arg e2e.rootwait 20) * 10 )) ]; do usleep 100000; i=$((i+1)); done
    mkdir -p /newroot
    if mount -t ext4 -o rw "$ROOT" /newroot 2>/tmp/mount.err && { [ -e /newroot/sbin/init ] || [ -L /newroot/sbin/init ]; }; then
        log "switch_root to $ROOT uptime=$(up)"
        for m in dev proc sys; do mkdir -p /newroot/$m; mount --move /$m /newroot/$m; done
        exec switch_root /newroot /sbin/init
    fi
    log "cannot mount root $ROOT ($(cat /tmp/mount.err; ls /newroot/sbin/init 2>&1)); continuing in the initramfs"
fi

# --- persistent state disk ----------------------------------------------------
if [ "$(arg e2e.persist 0)" = 1 ]; then
    dev=""; i=0
    while [ -z "$dev" ] && [ $i -lt 100 ]; do dev=$(findfs LABEL=e2epersist 2>/dev/null); [ -n "$dev" ] || usleep 100000; i=$((i+1)); done
    mkdir -p /persist
    if [ -n "$dev" ] && mount -t ext4 "$dev" /persist; then
        mkdir -p /persist/root /persist/var/log /persist/var/lib
        mount --bind /persist/root /root
        mount --bind /persist/var /var
        log "persist $dev mounted on /root and /var"
    else
        log "persist disk NOT FOUND"
    fi
fi

# --- network (qemu user mode / slirp defaults) ----------------------------------
if [ "$(arg e2e.net 1)" = 1 ]; then
    ip link set lo up
    IF=""
    for i in $(seq 50); do
        for n in /sys/class/net/*; do case "${n##*/}" in lo) ;; *) IF=${n##*/}; break ;; esac; done
        [ -n "$IF" ] && break; usleep 100000
    done
    if [ -n "$IF" ]; then
        ip link set "$IF" up
        ip addr add 10.0.2.15/24 dev "$IF"
        ip route add default via 10.0.2.2
        echo "nameserver 10.0.2.3" > /etc/resolv.conf
        log "net $IF up"
    else
        log "no network interface found"
    fi
fi

# --- the agent, as a boot unit runs it --------------------------------------------
CONF=$(arg e2e.conf "")
[ -n "$CONF" ] && cp "/etc/e2e/$CONF.conf" /etc/ci-agent.conf
hostname localhost
if [ -d /root/bootstrap ]; then   # state carried in from an earlier boot
    for f in /root/bootstrap/*; do [ -f "$f" ] && log "pre bootstrap-file ${f##*/}=$(cat "$f")"; done
fi
if [ -x /usr/bin/ci-agent ]; then
    log "agent start uptime=$(up)"
    timeout "$(arg e2e.agent_timeout 240)" /usr/bin/ci-agent run
    log "agent exit=$? uptime=$(up)"
else
    log "agent MISSING: /usr/bin/ci-agent"
fi

# --- results, one labelled line each (the harness greps them) ----------------------
show() { # show LABEL FILE: its ls -ln line and its content, each line prefixed
    if [ -e "$2" ]; then
        log "$1-ls $(ls -lnd "$2")"
        sed "s/^/E2E: $1 | /" "$2"
    else
        log "$1 MISSING $2"
    fi
}
log "hostname=$(hostname)"
log "etc-hostname=$(cat /etc/hostname 2>/dev/null)"
[ -d /root/.ssh ] && log "ssh-dir-ls $(ls -lnd /root/.ssh)"
show authorized_keys /root/.ssh/authorized_keys
show write_files /etc/e2e-written.txt
show runcmd /run/e2e-runcmd
show runcmd_argv /run/e2e-runcmd-argv
show script /run/e2e-script
if [ -d /root/bootstrap ]; then
    for f in /root/bootstrap/*; do [ -f "$f" ] && log "bootstrap-file ${f##*/}=$(cat "$f")"; done
fi
show bootstrap_log /var/log/vm-bootstrap.log
show bootstrap_done /root/e2e-bootstrap-done
if [ -x /usr/bin/ci-agent ]; then
    /usr/bin/ci-agent status --json > /tmp/status.json 2>/tmp/status.err
    log "status exit=$?"
    sed 's/^/E2E: status | /' /tmp/status.json
    sed 's/^/E2E: status-err | /' /tmp/status.err
fi
tail -n 30 /var/log/ci-agent.log 2>/dev/null | sed 's/^/E2E: agent-log | /'
# ci-seed in the guest (the arm64 guest carries it): it runs on this architecture, and
# the agent reads the seed it makes.
if [ -x /usr/bin/ci-seed ]; then
    for b in ci-agent ci-seed; do log "$b-target $(/usr/bin/$b --version 2>&1 | sed -n 's/^target: //p')"; done
    printf 'instance-id: iid-guest-seed\nlocal-hostname: made-in-guest\n' > /tmp/gs-meta
    printf '#cloud-config\n{}\n' > /tmp/gs-user
    /usr/bin/ci-seed /tmp/gs.iso /tmp/gs-user /tmp/gs-meta > /tmp/gs.out 2>&1
    log "guest-seed exit=$?"
    /usr/bin/ci-agent query --seed /tmp/gs.iso 2>&1 | grep -E '"(instance_id|hostname)"' | sed 's/^ */E2E: guest-seed | /'
fi

log "DONE uptime=$(up)"
if [ "$(arg e2e.shell 0)" = 1 ]; then setsid cttyhack sh; fi
sync
[ -d /persist ] && { umount /var 2>/dev/null; umount /root 2>/dev/null; umount /persist 2>/dev/null; }
poweroff -f
