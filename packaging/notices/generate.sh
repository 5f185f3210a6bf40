#!/bin/sh
# Regenerate packaging/notices/THIRD-PARTY-NOTICES: the licenses and notices of every
# crate linked into the binaries (normal dependencies of the shipped targets, all
# features; about.toml), from Cargo.lock, with cargo-about (offline: the texts come from
# the crates' own license files). The file is committed and shipped in every package;
# tests/notices.rs fails when Cargo.lock names a linked crate the file does not.
#   packaging/notices/generate.sh     needs: cargo install --locked cargo-about --features cli
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
cargo about --version >/dev/null 2>&1 || { echo "generate.sh: cargo-about missing (cargo install --locked cargo-about --features cli)" >&2; exit 2; }
cargo about generate --offline --locked --fail --all-features -c about.toml \
    packaging/notices/notices.hbs -o packaging/notices/THIRD-PARTY-NOTICES.tmp
mv packaging/notices/THIRD-PARTY-NOTICES.tmp packaging/notices/THIRD-PARTY-NOTICES
echo "generate.sh: packaging/notices/THIRD-PARTY-NOTICES ($(grep -c '^  [a-z0-9_-]* [0-9]' packaging/notices/THIRD-PARTY-NOTICES) crate entries)"
