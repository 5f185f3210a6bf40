#!/usr/bin/python3
"""Read the dependency list that `cargo auditable` embeds in a binary, as scanners do.

    scripts/audit-deps.py BINARY [--list]

Finds the `.dep-v0` section of an ELF file of any architecture (zlib-compressed JSON,
cargo-auditable's format), checks that it names the root package ci-agent, and prints
`BINARY: .dep-v0 with N packages (ci-agent VERSION, ...)`; with --list one `name version`
line per package. Exits 1 when the section is missing or unreadable. Standard library only:
no rust-audit-info, no binutils for the foreign architecture.
"""
import json
import struct
import sys
import zlib


def section(path, wanted):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    end = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(end + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)

    def header(i):
        base = shoff + i * shentsize
        name, = struct.unpack_from(end + "I", data, base)
        off, size = struct.unpack_from(end + "QQ", data, base + 0x18)
        return name, off, size

    _, stroff, strsize = header(shstrndx)
    names = data[stroff:stroff + strsize]
    for i in range(shnum):
        name, off, size = header(i)
        if names[name:names.index(b"\0", name)] == wanted:
            return data[off:off + size]
    return None


def main():
    args = [a for a in sys.argv[1:] if a != "--list"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = args[0]
    try:
        raw = section(path, b".dep-v0")
        if raw is None:
            print(f"{path}: no .dep-v0 section (not built with cargo auditable)", file=sys.stderr)
            return 1
        deps = json.loads(zlib.decompress(raw))
    except (OSError, ValueError, struct.error, zlib.error) as e:
        print(f"{path}: cannot read the dependency list: {e}", file=sys.stderr)
        return 1
    pkgs = deps.get("packages", [])
    roots = [p for p in pkgs if p.get("root")]
    if not any(p.get("name") == "ci-agent" for p in roots):
        print(f"{path}: .dep-v0 does not name ci-agent as its root package", file=sys.stderr)
        return 1
    if "--list" in sys.argv:
        for p in pkgs:
            print(p.get("name"), p.get("version"))
    some = ", ".join(f"{p['name']} {p['version']}" for p in roots + [p for p in pkgs if not p.get("root")][:3])
    print(f"{path}: .dep-v0 with {len(pkgs)} packages ({some}, ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
