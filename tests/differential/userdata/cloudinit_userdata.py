#!/usr/bin/python3
"""What cloud-init itself makes of a seed's user-data, for tests/userdata_differential.rs.

Run with /usr/bin/python3 and PYTHONPATH at Debian's unpacked cloud-init
(tests/cloudinit/fetch.sh). For each case directory given, prints one JSON line:

    {"case": NAME, "cloud_config": {...}, "scripts": [...], "boothooks": [...],
     "dropped": [...], "error": null}

The steps are cloud-init's own, calling its code:
1. the seed's `user-data` bytes go through `user_data.UserDataProcessor.process` (gzip,
   MIME, #include, #cloud-config-archive, classification) into one multipart message;
   `#include` URLs are not fetched (no network in tests): `_do_include` is a no-op;
2. the message is walked with cloud-init's default handlers (`stages.Init._default_handlers`:
   cloud-config with its mergers, shell scripts by frequency, boothooks, jinja) through its
   own `handlers.walk` / `walker_callback`, as `stages.Init._do_handlers` does;
3. the files the handlers write are captured instead of written (`util.write_file`), and the
   boothook is not run (`subp.subp`). The merged cloud-config is the `cloud-config.txt` the
   cloud-config handler writes, read back the way cloud-init reads it (`util.read_conf`'s
   `load_yaml`), and printed with cloud-init's own `json_serialize_default` (bytes become
   `ci-b64:...`).

Jinja templates are rendered with the instance data ci-agent computed for the case
(`ci-agent query --seed CASE --all`), which the test puts in `$CI_AGENT_INSTANCE_DATA/<case>.json`;
it is written where cloud-init's jinja handler reads it (`instance-data-sensitive.json` in
the run dir), so both sides render the same variables with their own engines.

`scripts` and `boothooks` are `{"frequency", "sha256", "text"}` in the order written.
`dropped` lists the warnings cloud-init logged for parts it skipped (a part that fails to
merge). `error` is set when cloud-init raises (it then applies no user-data at all).
"""

import hashlib
import json
import logging
import os
import sys
import tempfile

from cloudinit import handlers, helpers, subp, user_data, util
from cloudinit.handlers import boot_hook
from cloudinit.handlers.boot_hook import BootHookPartHandler
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
from cloudinit.handlers.jinja_template import JinjaTemplatePartHandler
from cloudinit.handlers.shell_script import ShellScriptPartHandler
from cloudinit.handlers.shell_script_by_frequency import ShellScriptByFreqPartHandler
from cloudinit.settings import PER_ALWAYS, PER_INSTANCE, PER_ONCE

IID = "iid-differential"


class FakeDataSource:
    def get_instance_id(self):
        return IID


class Dropped(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage().splitlines()[0])


def run_case(case_dir, tmp):
    written = []

    def write_file(filename, content, mode=0o644, *args, **kwargs):
        if isinstance(content, str):
            content = content.encode("utf-8")
        written.append((str(filename), bytes(content)))

    util.write_file = write_file
    boot_hook.subp.subp = lambda *a, **k: ("", "")
    user_data.UserDataProcessor._do_include = lambda self, content, append_msg: None

    paths = helpers.Paths(
        {"cloud_dir": os.path.join(tmp, "cloud"), "run_dir": os.path.join(tmp, "run")},
        FakeDataSource(),
    )
    idata_dir = os.environ.get("CI_AGENT_INSTANCE_DATA")
    name = os.path.basename(case_dir.rstrip("/"))
    if idata_dir and os.path.exists(os.path.join(idata_dir, name + ".json")):
        target = paths.get_runpath("instance_data_sensitive")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(os.path.join(idata_dir, name + ".json"), "rb") as src:
            with open(target, "wb") as dst:
                dst.write(src.read())
    with open(os.path.join(case_dir, "user-data"), "rb") as f:
        raw = f.read()
    msg = user_data.UserDataProcessor(paths).process(raw)

    opts = {"paths": paths, "datasource": FakeDataSource()}
    cloudconfig = CloudConfigPartHandler(**opts)
    shellscript = ShellScriptPartHandler(**opts)
    defaults = [
        cloudconfig,
        shellscript,
        ShellScriptByFreqPartHandler(PER_ALWAYS, **opts),
        ShellScriptByFreqPartHandler(PER_INSTANCE, **opts),
        ShellScriptByFreqPartHandler(PER_ONCE, **opts),
        BootHookPartHandler(**opts),
        JinjaTemplatePartHandler(**opts, sub_handlers=[cloudconfig, shellscript]),
    ]
    c_handlers = helpers.ContentHandlers()
    for mod in defaults:
        c_handlers.register(mod, overwrite=False)
    for _ctype, mod in c_handlers.items():
        if mod not in c_handlers.initialized:
            handlers.call_begin(mod, None, PER_INSTANCE)
            c_handlers.initialized.append(mod)
    part_data = {
        "handlers": c_handlers,
        "handlerdir": paths.get_ipath("handlers"),
        "data": None,
        "frequency": PER_INSTANCE,
        "handlercount": 0,
        "excluded": [],
    }
    try:
        handlers.walk(msg, handlers.walker_callback, data=part_data)
    finally:
        for _ctype, mod in c_handlers.items():
            if mod in c_handlers.initialized:
                c_handlers.initialized.remove(mod)
                handlers.call_end(mod, None, PER_INSTANCE)

    cloud_config = {}
    scripts = []
    boothooks = []
    cloud = paths.cloud_dir
    for path, content in written:
        rel = os.path.relpath(path, cloud)
        entry = {
            "sha256": hashlib.sha256(content).hexdigest(),
            "text": content.decode("utf-8", "replace")[:200],
        }
        if rel == os.path.join("instances", IID, "cloud-config.txt"):
            cloud_config = util.load_yaml(content) or {}
        elif rel.startswith(os.path.join("instances", IID, "boothooks") + os.sep):
            boothooks.append(dict(entry, frequency="per-boot"))
        elif rel.startswith(os.path.join("instance", "scripts") + os.sep):
            scripts.append(dict(entry, frequency="per-instance"))
        else:
            freq = {
                "per-boot": "per-boot",
                "per-instance": "per-instance",
                "per-once": "once",
            }.get(rel.split(os.sep)[1] if rel.startswith("scripts" + os.sep) else "")
            if freq is None:
                raise RuntimeError(f"unexpected file written: {rel}")
            scripts.append(dict(entry, frequency=freq))
    return cloud_config, scripts, boothooks


def main():
    dropped = Dropped()
    logging.getLogger().addHandler(dropped)
    logging.getLogger().setLevel(logging.WARNING)
    for case_dir in sys.argv[1:]:
        dropped.messages = []
        out = {"case": os.path.basename(case_dir.rstrip("/")), "error": None}
        with tempfile.TemporaryDirectory() as tmp:
            try:
                cfg, scripts, boothooks = run_case(case_dir, tmp)
                out.update(cloud_config=cfg, scripts=scripts, boothooks=boothooks)
            except Exception as e:  # cloud-init would stop consuming user-data here
                out["error"] = f"{type(e).__name__}: {e}"
        out["dropped"] = dropped.messages
        print(json.dumps(out, sort_keys=True, default=util.json_serialize_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
