#!/bin/sh
# Build small seed corpora for the fuzz targets from real tools' images (nothing binary is
# committed). Usage: fuzz/seed-corpus.sh  (from anywhere; writes fuzz/corpus/<target>/).
# Needs genisoimage, xorriso, mkfs.vfat (dosfstools), mtools, gzip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
iso="$here/corpus/iso9660_read"
fat="$here/corpus/fat_read"
ud="$here/corpus/userdata"
yml="$here/corpus/yaml"
srv="$here/corpus/serve_request"
cml="$here/corpus/cmdline"
bsr="$here/corpus/bootstrap_response"
mkdir -p "$iso" "$fat" "$ud" "$yml" "$srv" "$cml" "$bsr"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

src="$tmp/src"
mkdir -p "$src/sub"
printf '#cloud-config\nhostname: fuzz\n' > "$src/user-data"
printf 'instance-id: i-fuzz\n' > "$src/meta-data"
: > "$src/empty"
head -c 3000 /dev/zero | tr '\0' 'x' > "$src/big"
printf 'inner\n' > "$src/sub/inner"
long=$(printf 'n%.0s' $(seq 1 200))
printf 'long\n' > "$src/$long"

# ISO: without the 300 KiB tail padding, to stay within -max_len.
genisoimage -quiet -no-pad -o "$iso/genisoimage-JR.iso" -V cidata -J -R "$src"
genisoimage -quiet -no-pad -o "$iso/genisoimage-R.iso" -V cidata -R "$src"
genisoimage -quiet -no-pad -o "$iso/genisoimage-J.iso" -V cidata -J "$src" 2>/dev/null
xorriso -as mkisofs -quiet -no-pad -o "$iso/xorriso-RJ.iso" -V cidata -R -J "$src" 2>/dev/null
plain="$tmp/plain"
mkdir -p "$plain/SUB"
printf '#cloud-config\n' > "$plain/USERDATA"
printf 'x\n' > "$plain/SUB/FILE.TXT"
genisoimage -quiet -no-pad -o "$iso/genisoimage-plain.iso" -V cidata "$plain"

# FAT12: the smallest images mkfs.vfat makes, with an LFN name and a subdirectory.
export MTOOLS_SKIP_CHECK=1
rm -f "$fat/fat12-48k.img" "$fat/fat12-40k.img"  # mkfs.vfat -C refuses to overwrite
mkfs.vfat -C -F 12 -r 16 -s 1 -n CIDATA "$fat/fat12-48k.img" 48 >/dev/null
mmd -i "$fat/fat12-48k.img" ::/sub
mcopy -i "$fat/fat12-48k.img" "$src/user-data" "$src/meta-data" "$src/empty" "$src/big" ::/
mcopy -i "$fat/fat12-48k.img" "$src/sub/inner" ::/sub/
mkfs.vfat -C -F 12 -r 16 -s 1 -f 1 -n CIDATA "$fat/fat12-40k.img" 40 >/dev/null
mcopy -i "$fat/fat12-40k.img" "$src/user-data" "$src/meta-data" ::/

# user-data: the test fixtures, every format the classifier knows, and seeds split into
# user-data \0\0 meta-data \0\0 vendor-data (the userdata target's input layout).
for f in "$repo"/tests/fixtures/seed/user-data "$repo"/tests/fixtures/seed/bad-user-data \
    "$repo"/tests/fixtures/seed/dir/user-data "$repo"/examples/seed/user-data; do
    [ -f "$f" ] && cp "$f" "$ud/fixture-$(echo "${f#"$repo"/}" | tr / _)"
done
f="$repo/tests/fixtures/seed"
{ cat "$f/user-data"; printf '\0\0'; cat "$f/meta-data"; printf '\0\0'; cat "$f/vendor-data"; } > "$ud/split-seed"
printf '#cloud-config\nusers:\n  - default\n  - name: alice\n    groups: [wheel, adm]\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [ssh-ed25519 AAAA a@b]\nwrite_files:\n  - path: /etc/motd\n    content: aGk=\n    encoding: b64\n    permissions: "0644"\n    owner: root:root\n    append: true\nbootcmd: [[echo, a], "echo b"]\nruncmd: [ls]\nchpasswd: {expire: false, users: [{name: alice, password: x, type: text}]}\npower_state: {mode: reboot, delay: now}\nmerge: &a {x: 1}\nother: {<<: *a, y: yes}\n' > "$ud/cloud-config-all"
printf '#cloud-config\nhostname: gz\n' | gzip -9n > "$ud/gzip"
printf '#!/bin/sh\necho hi\n' > "$ud/script"
printf '#cloud-boothook\n#!/bin/sh\necho boot\n' > "$ud/boothook"
printf '#include\nhttp://127.0.0.1/a\n# c\nhttp://127.0.0.1/b\n' > "$ud/include"
printf 'Content-Type: multipart/mixed; boundary="XYZ"\nMIME-Version: 1.0\n\n--XYZ\nContent-Type: text/cloud-config; charset="us-ascii"\nContent-Disposition: attachment; filename="a.yaml"\n\n#cloud-config\nhostname: mime\n--XYZ\nContent-Type: text/x-shellscript-per-boot\nContent-Transfer-Encoding: base64\n\nIyEvYmluL3NoCmVjaG8gaGkK\n--XYZ\nContent-Type: text/x-include-url\n\nhttp://127.0.0.1/x\n--XYZ--\n' > "$ud/mime"
printf '#cloud-config\n\0\0{"instance-id": "i-json", "local-hostname": "h"}\0\0["#cloud-config\\npackages: [a]", "#!/bin/sh\\ntrue"]' > "$ud/json-meta-vendor-list"
printf 'a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n' > "$yml/aliases"
printf 'k: {a: [1, 2.5, -3, 0x1f, 0644, yes, off, ~, "q", !!str 5]}\n? complex\n: |\n  block\n' > "$yml/scalars"
cp "$ud/cloud-config-all" "$yml/cloud-config"
cp "$f/meta-data" "$yml/meta-data"

# serve: request heads.
printf 'GET /vm-bootstrap HTTP/1.1\r\nHost: 10.0.2.100\r\n\r\n' > "$srv/get"
printf 'HEAD /vm1/meta-data HTTP/1.0\n\n' > "$srv/head-lf"
printf 'GET /vm1/%%2e%%2e/escape?x=1#f HTTP/1.1\r\n\r\n' > "$srv/percent"

# kernel command lines.
printf 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro ds=nocloud;s=http://10.0.2.2:8000/vm1/;i=iid-1;h=host quiet\n' > "$cml/seedfrom"
printf "ds='nocloud-net;seedfrom=file:///mnt/seed/;local-hostname=x' console=ttyS0\n" > "$cml/quoted"
printf 'ds=nocloud\n' > "$cml/bare"

# HTTP responses the agent reads (first byte: 0 bootstrap, 1 seedfrom, 2 #include).
for sel in 0 1 2; do
    printf '%s' "$sel" | tr 012 '\000\001\002' > "$tmp/sel"
    { cat "$tmp/sel"; printf 'HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n#!/bin/sh\necho hi\n'; } > "$bsr/$sel-length"
    { cat "$tmp/sel"; printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'; } > "$bsr/$sel-chunked"
    { cat "$tmp/sel"; printf 'HTTP/1.0 200 OK\r\n\r\n#cloud-config\nhostname: x\n'; } > "$bsr/$sel-close"
    { cat "$tmp/sel"; printf 'HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n'; } > "$bsr/$sel-redirect"
    { cat "$tmp/sel"; printf 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'; } > "$bsr/$sel-404"
    { cat "$tmp/sel"; printf 'HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\nshort'; } > "$bsr/$sel-truncated"
done

ls -l "$iso" "$fat" "$ud" "$yml" "$srv" "$cml" "$bsr"
