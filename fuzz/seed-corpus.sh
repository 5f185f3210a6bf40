#!/bin/sh
# Build small seed corpora for the fuzz targets from real tools' images (nothing binary is
# committed). Usage: fuzz/seed-corpus.sh  (from anywhere; writes fuzz/corpus/<target>/).
# Needs genisoimage, xorriso, mkfs.vfat (dosfstools), mtools.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
iso="$here/corpus/iso9660_read"
fat="$here/corpus/fat_read"
mkdir -p "$iso" "$fat"
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
mkfs.vfat -C -F 12 -r 16 -s 1 -n CIDATA "$fat/fat12-48k.img" 48 >/dev/null
mmd -i "$fat/fat12-48k.img" ::/sub
mcopy -i "$fat/fat12-48k.img" "$src/user-data" "$src/meta-data" "$src/empty" "$src/big" ::/
mcopy -i "$fat/fat12-48k.img" "$src/sub/inner" ::/sub/
mkfs.vfat -C -F 12 -r 16 -s 1 -f 1 -n CIDATA "$fat/fat12-40k.img" 40 >/dev/null
mcopy -i "$fat/fat12-40k.img" "$src/user-data" "$src/meta-data" ::/

ls -l "$iso" "$fat"
