#!/usr/bin/env bash
# Measure ci-agent and ci-seed against cloud-init and cloud-localds on the same inputs, in
# one run, and print the tables of docs/benchmarks.md (issue 8). Never part of the tests.
#
#   scripts/bench.sh [--runs N] [--only LIST] [--out FILE] [--no-build] [--keep DIR]
#
#   --runs N     runs per command (default 15; the median is reported, after 1 warm-up)
#   --only LIST  comma-separated sections (default all): agent, seed, batch, size, reads, hot
#                (hot = `cargo bench`: the in-process figures; the qemu boots are
#                scripts/bench/vm.sh, much slower)
#   --out FILE   also write the markdown to FILE (default: stdout only)
#   --no-build   use the binaries already in target/x86_64-unknown-linux-musl/release
#   --keep DIR   work directory to keep (default: a temporary one, removed at the end)
# CI_AGENT=PATH / CI_SEED=PATH measure other binaries (e.g. a glibc build) instead;
# CI_AGENT_TLS=PATH the `tls` one (size section; default target/bench-tls/..., built here).
#
# What it needs: cargo + the musl target, python3 (Debian's /usr/bin/python3 3.11),
# cloud-localds + genisoimage + mkfs.vfat/mtools (cloud-image-utils), strace, apt (to
# download cloud-init: scripts/bench/cloudinit-env.sh, cached in /tmp/ci-bench-cache).
# Measurements: scripts/bench/runstat.py (wall, user+sys CPU, peak RSS of the exec'd
# program via ptrace); tables: scripts/bench/report.py.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=15; ONLY=all; OUT=""; BUILD=1; KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
want() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
RUNSTAT=("$PY" "$REPO/scripts/bench/runstat.py")
if [ -n "$KEEP" ]; then W=$KEEP; mkdir -p "$W"; else W=$(mktemp -d /tmp/ci-bench.XXXXXX); trap 'rm -rf "$W"' EXIT; fi
RES=$W/results.jsonl; : > "$RES"
SEED=$REPO/benches/fixtures/standard-seed
log() { echo "[bench] $*" >&2; }
# measure GROUP LABEL [runstat options] -- CMD...
measure() {
    local group=$1 label=$2; shift 2
    log "$group: $label"
    "${RUNSTAT[@]}" --runs "$RUNS" --meta "group=$group" --label "$label" "$@" >> "$RES"
}
record() { "$PY" -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' "$@" >> "$RES"; }

# ---- machine facts ----------------------------------------------------------------------
record group=facts key=date value="$(date -u '+%Y-%m-%d %H:%M UTC')"
record group=facts key=load value="$(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, at start)"
record group=facts key=cpu value="$(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
record group=facts key=kernel value="$(uname -sr)"
record group=facts key=rustc value="$(rustc --version)"
record group=facts key=python value="$("$PY" --version 2>&1) ($PY)"

# ---- build: the static release binaries (what ships) -----------------------------------
TARGET=x86_64-unknown-linux-musl
BIN=$REPO/target/$TARGET/release
if [ "$BUILD" = 1 ]; then
    log "cargo build --release --target $TARGET --bins"
    cargo build -q --release --target "$TARGET" --bins
fi
AGENT=${CI_AGENT:-$BIN/ci-agent}; CISEED=${CI_SEED:-$BIN/ci-seed}
[ -x "$AGENT" ] && [ -x "$CISEED" ] || { echo "bench.sh: no $AGENT / $CISEED (drop --no-build)" >&2; exit 1; }
OPT=$(awk '/^\[profile.release\]/{p=1;next} /^\[/{p=0} p && $1=="opt-level"{gsub(/"/,"",$3); print $3}' "$REPO/Cargo.toml" 2>/dev/null)
record group=facts key=build value="cargo build --release --target $TARGET (profile.release: opt-level ${OPT:-?}, lto, codegen-units 1, panic abort, strip)"

# the same seed as images, made by the reference tool
cloud-localds "$W/seed.iso" "$SEED/user-data" "$SEED/meta-data"
cloud-localds -f vfat "$W/seed.vfat" "$SEED/user-data" "$SEED/meta-data"

# ---- 1. agent vs cloud-init on the standard seed -----------------------------------------
if want agent; then
    SITE=$(scripts/bench/cloudinit-env.sh)
    record group=facts key=cloud-init value="$(cat /tmp/ci-bench-cache/version) (Debian package, unpacked: $(wc -l < /tmp/ci-bench-cache/packages) .debs, PYTHONPATH=$SITE)"
    measure agent "floor: busybox true (static; meter overhead)" -- /bin/busybox true
    measure agent "ci-agent query --seed DIR" -- "$AGENT" query --seed "$SEED"
    measure agent "ci-agent query --seed ISO" -- "$AGENT" query --seed "$W/seed.iso"
    measure agent "ci-agent query --seed VFAT" -- "$AGENT" query --seed "$W/seed.vfat"
    # a fresh root for every run (untimed): the agent's once-only state must not carry over
    mkdir -p "$W/root-template"
    scripts/bench/make-root.sh "$W/root-template"
    measure agent "ci-agent run --root TMP --seed ISO" \
        --setup "rm -rf '$W/root' && cp -a '$W/root-template' '$W/root'" \
        -- "$AGENT" run --root "$W/root" --seed "$W/seed.iso"
    measure agent "cloud-init: python3 -c 'import cloudinit.cmd.main'" --env "PYTHONPATH=$SITE" \
        -- "$PY" -c 'import cloudinit.cmd.main'
    measure agent "cloud-init: user-data path on the seed dir (cloudinit_userdata.py)" --env "PYTHONPATH=$SITE" \
        -- "$PY" "$REPO/scripts/bench/cloudinit_userdata.py" "$SEED"
    measure agent "python3 -c pass (interpreter alone)" -- "$PY" -c pass
    log "cloud-init user-data path in-process (1000 iterations)"
    PYTHONPATH=$SITE "$PY" scripts/bench/cloudinit_userdata.py --iterations 1000 "$SEED" |
        "$PY" -c 'import json,sys; d=json.load(sys.stdin); d.update(group="inproc", label="cloud-init user-data path (steps 1-4, in-process, after imports)"); print(json.dumps(d))' >> "$RES"
fi

# ---- 2. ci-seed vs cloud-localds / genisoimage per seed ------------------------------------
if want seed; then
    record group=facts key=cloud-localds value="$(dpkg-query -W -f '${Package} ${Version}' cloud-image-utils 2>/dev/null), $(genisoimage --version 2>&1 | head -1)"
    mkdir -p "$W/out"
    measure seed "ci-seed OUT.iso user-data meta-data" -- "$CISEED" "$W/out/a.iso" "$SEED/user-data" "$SEED/meta-data"
    measure seed "cloud-localds OUT.iso user-data meta-data" -- cloud-localds "$W/out/b.iso" "$SEED/user-data" "$SEED/meta-data"
    measure seed "genisoimage -volid cidata -joliet -rock (alone)" \
        -- genisoimage -quiet -output "$W/out/c.iso" -volid cidata -joliet -rock "$SEED/user-data" "$SEED/meta-data"
    measure seed "ci-seed -f vfat OUT.img user-data meta-data" -- "$CISEED" -f vfat "$W/out/a.img" "$SEED/user-data" "$SEED/meta-data"
    measure seed "cloud-localds -f vfat OUT.img user-data meta-data" -- cloud-localds -f vfat "$W/out/b.img" "$SEED/user-data" "$SEED/meta-data"
fi

# ---- 2b. ci-seed batch: 1,000 and 10,000 seeds ------------------------------------------
if want batch; then
    for n in 1000 10000; do
        "$PY" - "$n" > "$W/manifest-$n.jsonl" <<'EOF'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"name": f"vm{i:05d}", "hostname": f"vm{i:05d}", "instance-id": f"iid-bench-{i:05d}"}))
EOF
    done
    # disk (/tmp: ext4 on the VM's virtio disk) and tmpfs (/dev/shm: no device writes)
    for n in 1000 10000; do
        for where in "$W/batch" /dev/shm/ci-bench-batch; do
            kind=disk; [[ $where == /dev/shm/* ]] && kind=tmpfs
            runs=3; [ "$n" = 1000 ] && runs=5
            log "batch: $n seeds on $kind"
            "${RUNSTAT[@]}" --runs "$runs" --warmup 0 --meta group=batch --meta "seeds=$n" --meta "fs=$kind" \
                --label "ci-seed batch ($n seeds, $kind)" --setup "rm -rf '$where'" \
                -- "$CISEED" batch "$W/manifest-$n.jsonl" --out "$where" --user-data "$SEED/user-data" >> "$RES"
            record group=batchsize seeds="$n" fs="$kind" bytes="$(du -sb "$where" | cut -f1)" \
                allocated="$(du -s --block-size=1 "$where" | cut -f1)" files="$(find "$where" -type f | wc -l)"
            rm -rf "$where"
        done
    done
fi

# ---- 3. static binary sizes ---------------------------------------------------------------
if want size; then
    for b in "$AGENT" "$CISEED"; do
        record group=size name="$(basename "$b")" bytes="$(stat -c %s "$b")" file="$(file -b "$b" | cut -d, -f1-2,4-5)"
    done
    # The `tls` build is a size class of its own (rustls + ring: ~1 MiB more), reported
    # beside the default one and not held to its budget. ring has C and assembly: the
    # host's gcc compiles them (its objects link with musl; no musl-gcc needed).
    TLS_DIR=$REPO/target/bench-tls
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release --target $TARGET --features tls --bin ci-agent (--target-dir $TLS_DIR)"
        CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-gcc} \
            cargo build -q --release --target "$TARGET" --features tls --bin ci-agent --target-dir "$TLS_DIR"
    fi
    TLS=${CI_AGENT_TLS:-$TLS_DIR/$TARGET/release/ci-agent}
    if [ -x "$TLS" ]; then
        record group=size name="ci-agent (tls)" bytes="$(stat -c %s "$TLS")" file="$(file -b "$TLS" | cut -d, -f1-2,4-5)"
    else
        log "size: no tls build at $TLS (drop --no-build, or set CI_AGENT_TLS)"
    fi
fi

# ---- 3b. sector reads to find and read the seed ---------------------------------------------
if want reads; then
    for img in seed.iso seed.vfat; do
        strace -f -qq -e trace=openat,open,read,pread64,readv,preadv,lseek,close,mmap -o "$W/strace-$img.txt" \
            "$AGENT" query --seed "$W/$img" > /dev/null
        "$PY" scripts/bench/strace_reads.py "$W/strace-$img.txt" "$W/$img" "$img" >> "$RES"
    done
fi

# ---- in-process hot paths (cargo bench) --------------------------------------------------
if want hot; then
    log "cargo bench --bench hot_paths --bench seed_reads"
    cargo bench -q --bench hot_paths --bench seed_reads 2>/dev/null > "$W/cargo-bench.txt" || {
        cat "$W/cargo-bench.txt" >&2; exit 1; }
    record group=cargobench text="$(cat "$W/cargo-bench.txt")"
fi

record group=facts key=load-end value="$(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, at end)"
if [ -n "$OUT" ]; then
    "$PY" scripts/bench/report.py "$RES" | tee "$OUT"
else
    "$PY" scripts/bench/report.py "$RES"
fi
log "raw results: $RES${KEEP:+ (kept)}"
