#!/usr/bin/python3
"""Wait for the first successful `ssh ... true` to a guest through qemu's hostfwd.

    ssh_wait.py --port PORT --user USER --key KEY --out FILE [--stop FILE]
                [--known-hosts FILE --alias NAME] [--max SECS]

Starts one `ssh -i KEY -p PORT USER@127.0.0.1 true` every second, each with a 20 s
connect/banner timeout and up to 30 in flight (before the guest's network is up slirp
holds a forwarded connection open instead of refusing it, and such an attempt only ends
at its timeout: fewer slots than timeout seconds would leave gaps with no attempt), writes
`ssh_ok_ns=<CLOCK_REALTIME ns> attempts=N` to FILE when the first one exits 0, then stops
the others. Gives up when --stop FILE appears (the boot ended) or after --max seconds,
writing `ssh_ok_ns= attempts=N`. With --known-hosts, the host key must be that file's
key for --alias (StrictHostKeyChecking=yes); otherwise any host key is accepted.
Only 127.0.0.1 is ever contacted.
"""
import argparse
import os
import subprocess
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--stop")
ap.add_argument("--known-hosts")
ap.add_argument("--alias")
ap.add_argument("--max", type=float, default=900)
a = ap.parse_args()

cmd = ["ssh", "-F", "/dev/null", "-n", "-i", a.key, "-p", str(a.port),
       "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
       "-o", "LogLevel=ERROR"]
if a.known_hosts:
    cmd += ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + a.known_hosts,
            "-o", "HostKeyAlias=" + a.alias]
else:
    cmd += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
cmd += [a.user + "@127.0.0.1", "true"]

MAX_LIVE = 30  # > ConnectTimeout (20 s) / one start per second: no gap in the attempts
err = open(a.out + ".err", "w")
live, attempts, ok, t_end = [], 0, None, time.monotonic() + a.max
next_start = time.monotonic()
while ok is None and time.monotonic() < t_end and not (a.stop and os.path.exists(a.stop)):
    now = time.monotonic()
    if now >= next_start and len(live) < MAX_LIVE:
        live.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
        attempts += 1
        next_start = now + 1.0
    for p in list(live):
        rc = p.poll()
        if rc is None:
            continue
        live.remove(p)
        if rc == 0:
            ok = time.time_ns()
            break
    time.sleep(0.05)
for p in live:
    p.kill()
    p.wait()
with open(a.out, "w") as f:
    f.write("ssh_ok_ns=%s attempts=%d\n" % (ok if ok is not None else "", attempts))
