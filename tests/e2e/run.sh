#!/bin/bash
# End-to-end tests: real boots of a Debian kernel under qemu (TCG) with the real static
# ci-agent inside, seeds made by ci-seed and by the classic tools, and the vm-bootstrap
# endpoint served by `ci-seed serve --stdio`.
#
#   tests/e2e/run.sh [--only REGEX] [--list] [--no-build] [--work DIR] [--distro|--arm64|--all]
#
#   (default)   the initramfs matrix (seed makers x attachments, bootstrap, reboot)
#   --distro    only the full-distro boot (debootstrap + systemd + the .deb; ~3-4 min)
#   --arm64     only the arm64 boot: the aarch64-unknown-linux-musl ci-agent and ci-seed in
#               a busybox initramfs under qemu-system-aarch64 (TCG), seed on virtio-blk
#   --all       all three
#   --only RE   run the cases whose name matches the extended regex RE
#   --list      print the case names and exit
#   --no-build  reuse the binaries and guest from a previous run in --work
#   --work DIR  scratch directory (default /tmp/ci-agent-e2e); logs stay there
#
# Prints one "PASS name (Ns)" or "FAIL name: why" line per case (with the tail of the
# serial log on failure) and last exactly "N passed, N failed". Exit 1 on any failure.
# With other cases selected, the distro case runs in the background beside them (each
# boot is one single-threaded TCG qemu); its line comes last.
# Needs root for debootstrap (--distro) only. Host packages: scripts/install-deps.sh (scripts/tools.tsv).
# Environment: E2E_AGENT=/path/ci-agent, E2E_CISEED=/path/ci-seed use other binaries.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=/tmp/ci-agent-e2e; ONLY=""; LIST=0; BUILD=1; MODE=initramfs
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=$2; shift 2 ;;
        --list) LIST=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --work) WORK=$2; shift 2 ;;
        --distro) MODE=distro; shift ;;
        --arm64) MODE=arm64; shift ;;
        --all) MODE=all; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown arg $1" >&2; exit 2 ;;
    esac
done

TRIPLE=x86_64-unknown-linux-musl
BIN=$REPO/target/$TRIPLE/release
# E2E_AGENT / E2E_CISEED: test prebuilt binaries instead (the cargo build still runs
# unless --no-build; the guest is rebuilt with E2E_AGENT).
AGENT=${E2E_AGENT:-$BIN/ci-agent}
CISEED=${E2E_CISEED:-$BIN/ci-seed}
GUEST=$WORK/guest
FIX=$HERE/fixtures
KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyOnlyForTheE2eHarnessAAAAAAAAAAAA e2e-key-1'

# ---- case table: name kind args ---------------------------------------------------
# seed cases: seed-<maker>-<attachment>; maker: ciseed-iso ciseed-vfat geniso mkfsvfat
CASES=(
    "seed-ciseed-iso-ide        seed ciseed-iso cdrom"
    "seed-ciseed-iso-scsi       seed ciseed-iso scsi-cdrom"
    "seed-ciseed-iso-virtio     seed ciseed-iso virtio-blk"
    "seed-ciseed-vfat-virtio    seed ciseed-vfat virtio-blk"
    "seed-geniso-ide            seed geniso cdrom"
    "seed-geniso-scsi           seed geniso scsi-cdrom"
    "seed-geniso-virtio         seed geniso virtio-blk"
    "seed-mkfsvfat-virtio       seed mkfsvfat virtio-blk"
    "script-geniso-ide          script geniso cdrom"
    "seed-once-per-instance     once ciseed-iso cdrom"
    "no-seed                    noseed"
    "bootstrap-fails-twice      bootstrap flaky"
    "bootstrap-max-retry        bootstrap max"
    "bootstrap-reboot-persist   bootstrap reboot"
)
DISTRO_CASES=("distro-systemd-deb distro")
ARM64_CASES=("arm64-seed-ciseed-iso-virtio arm64 ciseed-iso virtio-blk")
case "$MODE" in
    distro) CASES=("${DISTRO_CASES[@]}") ;;
    arm64) CASES=("${ARM64_CASES[@]}") ;;
    all) CASES+=("${ARM64_CASES[@]}" "${DISTRO_CASES[@]}") ;;
esac
SELECTED=()
for c in "${CASES[@]}"; do
    read -r name _ <<<"$c"
    if [ -z "$ONLY" ] || [[ "$name" =~ $ONLY ]]; then SELECTED+=("$c"); fi
done
if [ "$LIST" = 1 ]; then for c in "${SELECTED[@]}"; do read -r name _ <<<"$c"; echo "$name"; done; exit 0; fi
[ ${#SELECTED[@]} -gt 0 ] || { echo "run.sh: no case matches '$ONLY'" >&2; exit 2; }

PASS=0; FAIL=0
say() { echo "[e2e] $*" >&2; }
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" = 0 ]
}
fail_all() { # fail_all WHY: the harness could not even start; every selected case fails
    local c name
    for c in "${SELECTED[@]}"; do read -r name _ <<<"$c"; echo "FAIL $name: $1"; FAIL=$((FAIL+1)); done
    finish || exit 1
}

# ---- build ------------------------------------------------------------------------
mkdir -p "$WORK"
t_start=$(date +%s)
if [ "$BUILD" = 1 ]; then
    say "cargo build --release --target $TRIPLE --bins"
    if ! (cd "$REPO" && cargo build --quiet --release --target "$TRIPLE" --bins) > "$WORK/build.log" 2>&1; then
        tail -n 30 "$WORK/build.log" | sed 's/^/    /'
        fail_all "cargo build for $TRIPLE failed (log $WORK/build.log)"
    fi
    if [ "$MODE" = initramfs ] || [ "$MODE" = all ]; then
        say "build-guest.sh"
        if ! "$HERE/build-guest.sh" --agent "$AGENT" --out "$GUEST" > "$WORK/build-guest.log" 2>&1; then
            tail -n 30 "$WORK/build-guest.log" | sed 's/^/    /'
            fail_all "build-guest.sh failed (log $WORK/build-guest.log)"
        fi
    fi
fi
for b in "$AGENT" "$CISEED"; do [ -x "$b" ] || fail_all "missing $b"; done

# ---- helpers ----------------------------------------------------------------------
WHY=()          # reasons the current case failed
BOOT_ARGS=()    # boot.sh arguments of every boot of the current case (--arch arm64)
TXT=""          # current serial log, \r stripped
expect() { # expect REGEX WHAT: the serial log has a line matching REGEX
    grep -qE -- "$1" "$TXT" || WHY+=("$2")
}
expect_not() { # expect_not REGEX WHAT
    if grep -qE -- "$1" "$TXT"; then WHY+=("$2"); fi
}
count_lines() { grep -cE -- "$1" "$2" 2>/dev/null || true; }
boot() { # boot CASEDIR LOGNAME boot.sh-args...: boots, strips \r into LOGNAME.txt
    local dir=$1 name=$2; shift 2
    local rc=0
    E2E_GUEST=$GUEST "$HERE/boot.sh" --log "$dir/$name.log" --quiet "${BOOT_ARGS[@]}" "$@" 2> "$dir/$name.boot" || rc=$?
    tr -d '\r' < "$dir/$name.log" > "$dir/$name.txt"
    TXT=$dir/$name.txt
    return $rc
}
make_meta() { # make_meta FILE HOSTNAME
    printf 'instance-id: iid-%s-%s\nlocal-hostname: %s\n' "$2" "$(date +%s%N)" "$2" > "$1"
}
make_seed() { # make_seed MAKER OUT USER-DATA META-DATA: CONFIG from fixtures is added
    local maker=$1 out=$2 ud=$3 md=$4 d
    case "$maker" in
        ciseed-iso)  "$CISEED" --config "$FIX/CONFIG" "$out" "$ud" "$md" ;;
        ciseed-vfat) "$CISEED" -f vfat --config "$FIX/CONFIG" "$out" "$ud" "$md" ;;
        geniso|mkfsvfat)
            d=$(mktemp -d "$WORK/seeddir.XXXXXX")
            cp "$ud" "$d/user-data"; cp "$md" "$d/meta-data"; cp "$FIX/CONFIG" "$d/CONFIG"
            if [ "$maker" = geniso ]; then   # img-clone's exact recipe
                genisoimage -quiet -output "$out" -volid cidata -joliet -rock -input-charset utf-8 "$d"
            else                             # cloud-localds -f vfat: label, then mcopy (no mount)
                rm -f "$out"; mkfs.vfat -C -n CIDATA "$out" 2048 >/dev/null
                for f in "$d"/*; do MTOOLS_SKIP_CHECK=1 mcopy -o -i "$out" "$f" "::$(basename "$f")"; done
            fi
            rm -rf "$d" ;;
        *) echo "bad maker $maker" >&2; return 2 ;;
    esac
}
make_persist() { # make_persist IMG [MAX_RETRY|nogate]: ext4 "e2epersist" with root/bootstrap/start-bootstrap
    local img=$1 max=${2:-} d
    d=$(mktemp -d "$WORK/persist.XXXXXX")
    mkdir -p "$d/root" "$d/var/log" "$d/var/lib"
    chmod 0700 "$d/root"
    if [ "$max" != nogate ]; then
        mkdir -p "$d/root/bootstrap"
        : > "$d/root/bootstrap/start-bootstrap"
        [ -n "$max" ] && echo "$max" > "$d/root/bootstrap/bootstrap-max-retry"
    fi
    rm -f "$img"; truncate -s 32M "$img"
    mkfs.ext4 -q -F -L e2epersist -d "$d" "$img"
    rm -rf "$d"
}
disk_cat() { # disk_cat IMG PATH: a file from the (cleanly unmounted) ext4 image
    debugfs -R "cat $2" "$1" 2>/dev/null
}
status_of() { # status_of LOG: the top-level "status" of the `ci-agent status --json` lines
    sed -n 's/^E2E: status | //p' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null || true
}
expect_status_done() {
    local st; st=$(status_of "$TXT")
    [ "$st" = done ] || WHY+=("ci-agent status --json: status is '$st', want 'done'")
}

# ---- seed and script cases --------------------------------------------------------
case_seed() { # case_seed DIR KIND MAKER ATTACH
    local dir=$1 kind=$2 maker=$3 attach=$4 host ud
    host=e2e-${maker}-${attach}; host=${host//_/-}
    if [ "$kind" = script ]; then ud=$FIX/user-data.script; host=e2e-script; else ud=$FIX/user-data.multipart; fi
    make_meta "$dir/meta-data" "$host"
    local seed=$dir/seed.img
    if ! make_seed "$maker" "$seed" "$ud" "$dir/meta-data" > "$dir/seed.out" 2>&1; then
        WHY+=("seed maker $maker failed: $(tail -n 3 "$dir/seed.out" | tr '\n' ' ')"); return
    fi
    boot "$dir" serial --seed "$seed" --attach "$attach" --timeout 180 --nic none --append "e2e.conf=seed e2e.net=0" \
        || WHY+=("boot did not finish (boot.sh: $(tail -n 1 "$dir/serial.boot"))")
    expect '^E2E: agent exit=0 ' 'ci-agent run did not exit 0'
    expect "^E2E: hostname=$host\$" "hostname is not $host"
    expect "^E2E: etc-hostname=$host\$" "/etc/hostname is not $host"
    expect_status_done
    expect '^E2E: script \| config:instance-config-marker$' 'user-data script did not read $CI_AGENT_SEED_DIR/CONFIG'
    if [ "$kind" = seed ]; then
        expect '^E2E: ssh-dir-ls drwx------ +[0-9]+ +0 +0 ' '/root/.ssh is not 0700 root:root'
        expect '^E2E: authorized_keys-ls -rw------- +[0-9]+ +0 +0 ' 'authorized_keys is not 0600 root:root'
        expect "^E2E: authorized_keys \\| ${KEY//+/\\+}\$" 'authorized_keys lacks the seed key'
        [ "$(count_lines '^E2E: authorized_keys \| ssh-ed25519 ' "$TXT")" = 1 ] || WHY+=('authorized_keys does not hold exactly one key')
        expect '^E2E: write_files-ls -rw-r----- +[0-9]+ +0 +0 ' 'write_files target is not 0640 root:root'
        expect '^E2E: write_files \| written by write_files$' 'write_files content wrong'
        expect '^E2E: runcmd \| runcmd-ok$' 'runcmd string item did not run'
        expect '^E2E: runcmd_argv \| argv-ok$' 'runcmd argv item did not run'
    fi
}

# ---- once per instance: state on a persistent disk, three boots -------------------------
case_once() { # case_once DIR MAKER ATTACH
    local dir=$1 maker=$2 attach=$3 disk=$1/persist.img
    local args=(--attach "$attach" --timeout 180 --nic none --persist "$disk" --append "e2e.conf=seed e2e.net=0 e2e.persist=1")
    make_persist "$disk" nogate
    make_meta "$dir/meta-a" e2e-once-a
    make_seed "$maker" "$dir/seed-a.img" "$FIX/user-data.multipart" "$dir/meta-a" > "$dir/seed.out" 2>&1 \
        || { WHY+=("seed maker $maker failed: $(tail -n 3 "$dir/seed.out" | tr '\n' ' ')"); return; }
    boot "$dir" boot1 --seed "$dir/seed-a.img" "${args[@]}" || WHY+=("boot 1 did not finish")
    expect '^E2E: agent exit=0 ' 'boot 1: ci-agent run did not exit 0'
    expect '^E2E: runcmd \| runcmd-ok$' 'boot 1: runcmd did not run'
    # Same seed again (a reboot): per-instance work must not run twice.
    boot "$dir" boot2 --seed "$dir/seed-a.img" "${args[@]}" || WHY+=("boot 2 did not finish")
    expect '^E2E: agent exit=0 ' 'boot 2: ci-agent run did not exit 0'
    expect '^E2E: runcmd MISSING ' 'boot 2: runcmd ran again for the same instance-id'
    [ "$(count_lines '^E2E: authorized_keys \| ssh-ed25519 ' "$TXT")" = 1 ] || WHY+=('boot 2: authorized_keys does not hold exactly one key')
    expect_status_done
    # A new instance-id (the disk cloned into a new VM): everything runs again, keys stay unique.
    make_meta "$dir/meta-b" e2e-once-b
    make_seed "$maker" "$dir/seed-b.img" "$FIX/user-data.multipart" "$dir/meta-b" > "$dir/seed.out" 2>&1 \
        || { WHY+=("seed maker $maker failed (b)"); return; }
    boot "$dir" boot3 --seed "$dir/seed-b.img" "${args[@]}" || WHY+=("boot 3 did not finish")
    expect '^E2E: agent exit=0 ' 'boot 3: ci-agent run did not exit 0'
    expect '^E2E: hostname=e2e-once-b$' 'boot 3: hostname is not the new instance'\''s'
    expect '^E2E: runcmd \| runcmd-ok$' 'boot 3: runcmd did not run for the new instance-id'
    [ "$(count_lines '^E2E: authorized_keys \| ssh-ed25519 ' "$TXT")" = 1 ] || WHY+=('boot 3: authorized_keys does not hold exactly one key')
    expect_status_done
}

# ---- no seed at all: the agent must not hold the boot ---------------------------------
case_noseed() { # case_noseed DIR
    local dir=$1 t_start t_end
    boot "$dir" serial --timeout 180 --nic none --append "e2e.conf=seed e2e.net=0" || WHY+=("boot did not finish")
    expect '^E2E: agent exit=0 ' 'ci-agent run without a seed did not exit 0'
    t_start=$(sed -n 's/^E2E: agent start uptime=\([0-9]*\).*/\1/p' "$TXT")
    t_end=$(sed -n 's/^E2E: agent exit=[0-9]* uptime=\([0-9]*\).*/\1/p' "$TXT")
    if [ -n "$t_start" ] && [ -n "$t_end" ]; then
        [ $((t_end - t_start)) -le 60 ] || WHY+=("the agent looked for a seed for $((t_end - t_start)) s (limit 60)")
    fi
    expect '^E2E: hostname=localhost$' 'hostname changed without a seed'
}

# ---- bootstrap cases ----------------------------------------------------------------
case_bootstrap() { # case_bootstrap DIR VARIANT
    local dir=$1 variant=$2 disk=$1/persist.img n
    local args=(--timeout 240 --ci-seed "$CISEED" --persist "$disk" --append "e2e.conf=bootstrap e2e.persist=1")
    case "$variant" in
    flaky)
        make_persist "$disk"
        boot "$dir" serial "${args[@]}" --serve "$FIX/bootstrap-flaky.sh" || WHY+=("boot did not finish")
        expect '^E2E: agent exit=0 ' 'ci-agent run did not exit 0'
        expect '^E2E: bootstrap-file retry-amount=3$' 'retry-amount is not 3'
        expect '^E2E: bootstrap_log \| e2e-bootstrap attempt 1 ' 'log lacks attempt 1'
        expect '^E2E: bootstrap_log \| e2e-bootstrap attempt 2 ' 'log lacks attempt 2'
        expect '^E2E: bootstrap_log \| e2e-bootstrap success$' 'log lacks the success line'
        expect '^E2E: bootstrap_done \| ok$' 'the successful attempt left no marker'
        expect_status_done
        n=$(count_lines request "$dir/serial.log.http"); [ "$n" = 3 ] || WHY+=("host served $n requests, want 3")
        [ "$(disk_cat "$disk" /root/bootstrap/retry-amount | tr -d '[:space:]')" = 3 ] || WHY+=('retry-amount on the disk (debugfs) is not 3')
        ;;
    max)
        make_persist "$disk" 3
        boot "$dir" serial "${args[@]}" --serve "$FIX/bootstrap-fail.sh" || WHY+=("boot did not finish")
        expect '^E2E: bootstrap-file retry-amount=3$' 'retry-amount is not 3 (= bootstrap-max-retry)'
        expect '^E2E: bootstrap_log \| e2e-bootstrap always-fail attempt 3$' 'log lacks attempt 3'
        expect_not '^E2E: bootstrap_log \| e2e-bootstrap always-fail attempt 4$' 'a 4th attempt ran past bootstrap-max-retry=3'
        n=$(count_lines request "$dir/serial.log.http"); [ "$n" = 3 ] || WHY+=("host served $n requests, want 3")
        # A further boot must not fetch again: the limit is reached for good.
        boot "$dir" serial2 "${args[@]}" --serve "$FIX/bootstrap-fail.sh" || WHY+=("second boot did not finish")
        n=$(count_lines request "$dir/serial2.log.http"); [ "$n" = 0 ] || WHY+=("second boot fetched $n times after the limit")
        expect '^E2E: bootstrap-file retry-amount=3$' 'retry-amount changed on the second boot'
        ;;
    reboot)
        make_persist "$disk"
        boot "$dir" serial1 "${args[@]}" --serve "$FIX/bootstrap-reboot.sh" || true   # the script reboots: no DONE
        n=$(count_lines request "$dir/serial1.log.http"); [ "$n" = 2 ] || WHY+=("boot 1: host served $n requests, want 2")
        expect_not '^E2E: DONE' 'boot 1 was not cut short by the reboot in attempt 2'
        boot "$dir" serial2 "${args[@]}" --serve "$FIX/bootstrap-reboot.sh" || WHY+=("boot 2 did not finish")
        expect '^E2E: pre bootstrap-file retry-amount=2$' 'boot 2 did not start with retry-amount 2 from boot 1'
        expect '^E2E: bootstrap-file retry-amount=3$' 'retry-amount is not 3 after boot 2'
        expect '^E2E: bootstrap_done \| ok$' 'attempt 3 did not succeed'
        expect '^E2E: bootstrap_log \| e2e-bootstrap attempt 1 ' 'log (persisted) lacks attempt 1'
        expect '^E2E: bootstrap_log \| e2e-bootstrap success$' 'log lacks the success line'
        expect_status_done
        n=$(count_lines request "$dir/serial2.log.http"); [ "$n" = 1 ] || WHY+=("boot 2: host served $n requests, want 1")
        [ "$(disk_cat "$disk" /root/bootstrap/retry-amount | tr -d '[:space:]')" = 3 ] || WHY+=('retry-amount on the disk (debugfs) is not 3')
        ;;
    esac
}

# ---- arm64: the same seed case on qemu-system-aarch64 ---------------------------------
ARM64_TRIPLE=aarch64-unknown-linux-musl
case_arm64() { # case_arm64 DIR MAKER ATTACH
    local dir=$1 bin=$REPO/target/$ARM64_TRIPLE/release
    local GUEST=$WORK/guest-arm64   # boot() boots this guest
    if [ "$BUILD" = 1 ]; then
        # Linked by rust-lld (.cargo/config.toml): no cross C toolchain.
        if ! (cd "$REPO" && cargo build --quiet --release --target "$ARM64_TRIPLE" --bins) > "$dir/build.log" 2>&1; then
            WHY+=("cargo build for $ARM64_TRIPLE failed: $(tail -n 3 "$dir/build.log" | tr '\n' ' ')"); return
        fi
        if ! "$HERE/build-guest.sh" --arch arm64 --agent "$bin/ci-agent" --extra "$bin/ci-seed:/usr/bin/ci-seed" \
            --out "$GUEST" > "$dir/build-guest.log" 2>&1; then
            WHY+=("build-guest.sh --arch arm64 failed: $(tail -n 3 "$dir/build-guest.log" | tr '\n' ' ')"); return
        fi
    fi
    BOOT_ARGS=(--arch arm64)
    case_seed "$dir" seed "$2" "$3"
    BOOT_ARGS=()
    expect "^E2E: ci-agent-target $ARM64_TRIPLE\$" "the guest's ci-agent is not the $ARM64_TRIPLE build"
    expect "^E2E: ci-seed-target $ARM64_TRIPLE\$" "the guest's ci-seed is not the $ARM64_TRIPLE build"
    expect '^E2E: guest-seed exit=0$' 'the arm64 ci-seed did not make a seed in the guest'
    expect '^E2E: guest-seed \| "instance_id": "iid-guest-seed",$' 'the agent did not read the seed the arm64 ci-seed made'
}

# ---- full distro ------------------------------------------------------------------
case_distro() { # case_distro DIR
    local dir=$1
    if ! "$HERE/distro.sh" --work "$WORK" --out "$dir" > "$dir/distro.out" 2>&1; then
        WHY+=("distro.sh failed: $(grep -E '^(distro|E2E-FAIL)' "$dir/distro.out" | tail -n 5 | tr '\n' ' ')")
    fi
    TXT=$dir/serial.txt
    [ -f "$TXT" ] || TXT=$dir/distro.out
}

# ---- run ------------------------------------------------------------------------------
run_case() { # run_case CASE-LINE: runs it, prints its PASS/FAIL lines, returns 1 on FAIL
    local name kind a1 a2 dir t0 t
    read -r name kind a1 a2 <<<"$1"
    dir=$WORK/cases/$name; rm -rf "$dir"; mkdir -p "$dir"
    WHY=(); TXT=/dev/null
    t0=$(date +%s)
    case "$kind" in
        seed|script) case_seed "$dir" "$kind" "$a1" "$a2" ;;
        once) case_once "$dir" "$a1" "$a2" ;;
        noseed) case_noseed "$dir" ;;
        bootstrap) case_bootstrap "$dir" "$a1" ;;
        distro) case_distro "$dir" ;;
        arm64) case_arm64 "$dir" "$a1" "$a2" ;;
    esac
    t=$(( $(date +%s) - t0 ))
    if [ ${#WHY[@]} = 0 ]; then
        echo "PASS $name (${t}s)"
    else
        echo "FAIL $name (${t}s): $(IFS=';'; echo "${WHY[*]}")"
        echo "    --- tail of $TXT ---"
        tail -n 40 "$TXT" 2>/dev/null | sed 's/^/    /'
        return 1
    fi
}
count() { # count RC: adds one case's result
    if [ "$1" = 0 ]; then PASS=$((PASS+1)); else FAIL=$((FAIL+1)); fi
}

# The distro case is the longest (debootstrap, two systemd boots) and uses its own files
# under $WORK; when other cases run too, it runs beside them (one qemu each on two cores),
# its report held back until they are done.
BG_PID=""; BG_OUT=$WORK/distro-background.out
FG=()
for c in "${SELECTED[@]}"; do
    read -r _ kind _ <<<"$c"
    if [ "$kind" = distro ] && [ ${#SELECTED[@]} -gt 1 ]; then
        run_case "$c" > "$BG_OUT" 2>&1 &
        BG_PID=$!
    else
        FG+=("$c")
    fi
done
for c in "${FG[@]}"; do
    rc=0; run_case "$c" || rc=$?; count "$rc"
done
if [ -n "$BG_PID" ]; then
    rc=0; wait "$BG_PID" || rc=$?
    cat "$BG_OUT"
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$BG_OUT"; then
        echo "FAIL distro-systemd-deb: its background run ended with status $rc and no result"
    fi
    count "$rc"
fi
say "total $(( $(date +%s) - t_start ))s, logs in $WORK/cases"
finish
