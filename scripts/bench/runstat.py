#!/usr/bin/python3
"""Run a command N times and report wall time, CPU time and peak RSS (medians), as JSON.

Why not /usr/bin/time or subprocess + wait4: the kernel's ru_maxrss of a child includes the
high-water RSS of the address space it had *before* exec (exec_mmap records the old mm's
peak), so a child forked from python reports python's ~10 MiB, and one forked from GNU time
reports time's own pages. For a program whose whole peak is ~1 MiB that is the dominant
term. So this helper traces the child (ptrace: stops only at exec and at exit, no syscall
tracing) and reads the figures of the exec'd program itself:

* peak RSS: VmHWM of /proc/PID/status at the exit stop (the mm of the exec'd image only);
* CPU (`cpu_ms`): user+sys from wait4's rusage (the program and every descendant it waited
  for, e.g. useradd) minus the on-CPU time the forked child had spent before exec (about
  1-2 ms of copy-on-write faults in a python child; /proc/PID/schedstat at the exec stop).
  rusage's user+sys sum is the exact scheduler runtime (only the split is tick-sampled), so
  `user_ms`/`sys_ms` are raw rusage and include that pre-exec time (`pre_exec_ms`).
  `task_cpu_ms` is the main thread's on-CPU time from /proc/PID/schedstat between the exec
  and the exit stops (nanosecond resolution, no descendants);
* wall: from the exec stop to the exit stop (fork and ptrace stops excluded).

    runstat.py [--runs N] [--warmup W] [--setup SHELL-CMD] [--label L] [--env K=V]...
               [--meta K=V]... [--cwd DIR] [--allow-fail] -- CMD [ARGS...]

--setup runs (untimed, through /bin/sh) before every run, e.g. to make a fresh root
directory. Every run must exit 0 (else this exits 1 showing its stderr), unless
--allow-fail. Prints one JSON object on stdout (--meta pairs are copied into it). Linux only; uses only the standard library.
"""

import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import time

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def ptrace(req, pid, data=0):
    if libc.ptrace(req, pid, None, ctypes.c_void_p(data)) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({req}, {pid}): {os.strerror(err)}")


def task_cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_once(argv, env, cwd, errpath):
    """One traced run; returns a dict of figures."""
    errfd = os.open(errpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDWR)
    pid = os.fork()
    if pid == 0:  # child: as little as possible before exec
        try:
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.dup2(errfd, 2)
            if cwd:
                os.chdir(cwd)
            libc.ptrace(PTRACE_TRACEME, 0, None, None)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(errfd)
    os.close(devnull)
    # First stop: SIGTRAP after a successful execve (or the child died: exec failed).
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        return {"exit": os.waitstatus_to_exitcode(status), "exec_failed": True}
    t0 = time.perf_counter_ns()
    cpu0 = task_cpu_ns(pid)
    ptrace(PTRACE_SETOPTIONS, pid, PTRACE_O_TRACEEXIT)
    ptrace(PTRACE_CONT, pid, 0)
    hwm = None
    t1 = cpu1 = None
    while True:
        _, status, ru = os.wait4(pid, 0)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
        if not os.WIFSTOPPED(status):
            continue
        sig = os.WSTOPSIG(status)
        if sig == signal.SIGTRAP and (status >> 16) == PTRACE_EVENT_EXIT:
            t1 = time.perf_counter_ns()
            cpu1 = task_cpu_ns(pid)
            hwm = vm_hwm_kib(pid)
            ptrace(PTRACE_CONT, pid, 0)
        else:  # deliver any other signal unchanged
            ptrace(PTRACE_CONT, pid, 0 if sig == signal.SIGTRAP else sig)
    if t1 is None:
        t1 = time.perf_counter_ns()
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_ms": (t1 - t0) / 1e6,
        "user_ms": ru.ru_utime * 1e3,
        "sys_ms": ru.ru_stime * 1e3,
        # rusage's user+sys is the exact on-CPU time (the split is tick-sampled); the
        # forked child's time before exec (cpu0) is taken off
        "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1e3 - cpu0 / 1e6,
        "pre_exec_ms": cpu0 / 1e6,
        "task_cpu_ms": (cpu1 - cpu0) / 1e6 if cpu1 is not None else None,
        "peak_rss_kib": hwm,
        "ru_maxrss_kib": ru.ru_maxrss,
    }


def main():
    args = sys.argv[1:]
    runs, warmup, setup, label, cwd, allow_fail = 10, 1, None, None, None, False
    meta = {}
    env = dict(os.environ)
    while args and args[0] != "--":
        a = args.pop(0)
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if not args:
            sys.exit(f"runstat: {a} needs a value")
        v = args.pop(0) if a != "--allow-fail" else None
        if a == "--allow-fail":
            allow_fail = True
        elif a == "--runs":
            runs = int(v)
        elif a == "--warmup":
            warmup = int(v)
        elif a == "--setup":
            setup = v
        elif a == "--label":
            label = v
        elif a == "--cwd":
            cwd = v
        elif a == "--meta":
            k, _, val = v.partition("=")
            meta[k] = val
        elif a == "--env":
            k, _, val = v.partition("=")
            env[k] = val
        else:
            sys.exit(f"runstat: unknown option {a}")
    if not args or args[0] != "--" or len(args) < 2:
        sys.exit("usage: runstat.py [options] -- CMD [ARGS...]")
    argv = args[1:]
    errpath = f"/tmp/runstat-{os.getpid()}.stderr"
    samples = []
    try:
        for i in range(warmup + runs):
            if setup:
                subprocess.run(["/bin/sh", "-c", setup], check=True)
            r = run_once(argv, env, cwd, errpath)
            if r["exit"] != 0 and not allow_fail:
                with open(errpath, errors="replace") as f:
                    err = f.read()[-2000:]
                sys.stderr.write(f"runstat: {' '.join(argv)} exited {r['exit']}:\n{err}\n")
                return 1
            if i >= warmup:
                samples.append(r)
    finally:
        try:
            os.unlink(errpath)
        except OSError:
            pass

    def med(key):
        vals = [s[key] for s in samples if s.get(key) is not None]
        return statistics.median(vals) if vals else None

    def rng(key):
        vals = [s[key] for s in samples if s.get(key) is not None]
        return [min(vals), max(vals)] if vals else None

    out = {"label": label or " ".join(argv), "argv": argv, "runs": len(samples), **meta}
    for k in ("wall_ms", "user_ms", "sys_ms", "cpu_ms", "pre_exec_ms", "task_cpu_ms", "peak_rss_kib", "ru_maxrss_kib"):
        out[k] = med(k)
        out[k + "_range"] = rng(k)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
