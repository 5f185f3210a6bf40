#!/usr/bin/python3
"""Count what a traced program read from one file, from an `strace -f -o LOG` of it.

    strace_reads.py LOG PATH LABEL     prints one JSON object (group "reads")

Tracks every descriptor opened on PATH (openat/open, per pid; a close ends it) and counts
read/pread64/readv/preadv calls on it, the bytes they returned, lseek calls, and the
distinct 2048-byte sectors the reads covered (the file offset is followed through lseek
and reads; pread uses its own offset). mmap of the file is counted separately (the agent
is expected to use none). strace needs `-e trace=openat,open,read,pread64,readv,preadv,
lseek,close,mmap`.
"""
import json
import re
import sys

log, path, label = sys.argv[1:4]
line_re = re.compile(r'^(?:(\d+)\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+|0x[0-9a-f]+)')
fds = {}  # (pid, fd) -> offset
reads = nbytes = seeks = mmaps = opens = sector_reads = 0
sectors = set()
for raw in open(log, errors="replace"):
    m = line_re.match(raw.strip())
    if not m:
        continue
    pid, call, args, ret = m.group(1) or "0", m.group(2), m.group(3), m.group(4)
    try:
        r = int(ret, 0)
    except ValueError:
        continue
    if call in ("openat", "open"):
        if f'"{path}"' in args and r >= 0:
            fds[(pid, r)] = 0
            opens += 1
        continue
    if call == "mmap":
        parts = [a.strip() for a in args.split(",")]
        if len(parts) >= 5 and parts[4].isdigit() and (pid, int(parts[4])) in fds:
            mmaps += 1
        continue
    fdm = re.match(r'(\d+)', args)
    if not fdm:
        continue
    key = (pid, int(fdm.group(1)))
    if key not in fds:
        continue
    if call == "close":
        del fds[key]
    elif call == "lseek":
        seeks += 1
        if r >= 0:
            fds[key] = r
    elif call in ("read", "readv", "pread64", "preadv"):
        reads += 1
        if r > 0:
            nbytes += r
            if call in ("pread64", "preadv"):
                start = int(args.rsplit(",", 1)[1].strip())
            else:
                start = fds[key]
                fds[key] += r
            span = range(start // 2048, (start + r - 1) // 2048 + 1)
            sector_reads += len(span)
            sectors.update(span)
print(json.dumps({"group": "reads", "label": label, "opens": opens, "read_calls": reads,
                  "bytes": nbytes, "seeks": seeks, "sectors_2k": len(sectors), "sector_reads_2k": sector_reads, "mmaps": mmaps}))
