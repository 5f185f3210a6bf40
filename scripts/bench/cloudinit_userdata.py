#!/usr/bin/python3
"""cloud-init's own code path for what `ci_agent::userdata::parse_seed` does, on a seed dir.

Run with PYTHONPATH pointing at an unpacked Debian cloud-init (scripts/bench/cloudinit-env.sh).
The steps are the ones cloud-init 22.4 takes on a NoCloud seed, calling its functions:

1. read the seed files: `util.pathprefix2dict(dir, required=[user-data, meta-data],
   optional=[vendor-data, network-config])` (DataSourceNoCloud._get_data, after mounting);
2. meta-data: `DataSourceNoCloud._merge_new_seed` (util.load_yaml + util.mergemanydict), then
   the defaults merge (`instance-id: nocloud`, dsmode);
3. user-data: `user_data.UserDataProcessor(paths).process(blob)` (classification: MIME,
   gzip, #include, #cloud-config…, into one multipart message);
4. walk the parts (`handlers.walk`) and merge every `text/cloud-config` part with the real
   `CloudConfigPartHandler` (merge-type extraction, `mergers.construct(...).merge`), without
   its final write of cloud_config.txt (ours does not write either).

    cloudinit_userdata.py SEED-DIR                  process once, print the merged config (JSON)
    cloudinit_userdata.py --iterations N SEED-DIR   also time steps 1-4 in-process: median µs
"""

import json
import os
import statistics
import sys
import tempfile
import time

from cloudinit import handlers, helpers, user_data, util
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
from cloudinit.sources.DataSourceNoCloud import _merge_new_seed


def process(seed_dir, paths):
    seeded = util.pathprefix2dict(
        seed_dir,
        required=["user-data", "meta-data"],
        optional=["vendor-data", "network-config"],
    )
    mydata = {"meta-data": {}, "user-data": "", "vendor-data": "", "network-config": None}
    mydata = _merge_new_seed(mydata, seeded)
    meta = util.mergemanydict([mydata["meta-data"], {"instance-id": "nocloud", "dsmode": "net"}])
    msg = user_data.UserDataProcessor(paths).process(mydata["user-data"])
    handler = CloudConfigPartHandler(paths)
    handler.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    wanted = set(handler.list_types())

    def callback(_data, filename, payload, headers):
        ctype = headers["Content-Type"]
        if ctype in wanted:
            handler.handle_part(None, ctype, filename, payload, None, headers)

    handlers.walk(msg, callback, None)
    return meta, handler.cloud_buf or {}


def main():
    args = sys.argv[1:]
    iterations = 0
    if len(args) == 3 and args[0] == "--iterations":
        iterations = int(args[1])
        args = args[2:]
    if len(args) != 1:
        sys.exit(__doc__)
    seed_dir = args[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = helpers.Paths({"cloud_dir": tmp, "run_dir": os.path.join(tmp, "run")})
        meta, cfg = process(seed_dir, paths)
        if not cfg:
            sys.exit(f"{seed_dir}: no cloud-config merged")
        if iterations:
            samples = []
            for _ in range(iterations):
                t0 = time.perf_counter_ns()
                process(seed_dir, paths)
                samples.append(time.perf_counter_ns() - t0)
            print(
                json.dumps(
                    {
                        "iterations": iterations,
                        "median_us": statistics.median(samples) / 1e3,
                        "min_us": min(samples) / 1e3,
                        "max_us": max(samples) / 1e3,
                    }
                )
            )
        else:
            print(json.dumps({"meta-data": meta, "cloud-config": cfg}, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
