//! Hot paths of the agent and of ci-seed, timed in-process on the standard seed (issue 8):
//! reading a seed from an ISO9660 image and from a vfat image, classifying + parsing + merging
//! its user-data, and writing a seed ISO. `cargo bench --bench hot_paths` prints the median
//! time per operation; under `cargo test` every body runs once and its output is checked.
//!
//! The images are what users actually hand the agent: made by `cloud-localds` (genisoimage
//! `-joliet -rock`, or mkfs.vfat + mcopy) when it is installed, else by our own ISO writer
//! and by `fatfs`. They are read from memory (`Cursor`), so the figures are the parsing cost
//! alone; the device I/O the agent does is counted separately by `benches/seed_reads.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use ci_agent::formats::iso9660;
use ci_agent::formats::userdata::{self, Seed};
use common::{standard_seed_files, Harness};

/// A seed image of the standard seed and what made it.
struct Image {
    bytes: Vec<u8>,
    made_by: &'static str,
}

fn cloud_localds(fs: &str) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::cloud_localds(dir.path(), fs)?;
    Some(std::fs::read(&out).expect("read cloud-localds output"))
}

fn iso_image() -> Image {
    match cloud_localds("iso9660") {
        Some(bytes) => Image {
            bytes,
            made_by: "cloud-localds (genisoimage -joliet -rock)",
        },
        None => Image {
            bytes: iso9660::write::image_bytes(
                &standard_seed_files(),
                &iso9660::write::WriteOptions::default(),
            )
            .expect("write ISO"),
            made_by: "ci_agent::formats::iso9660::write (cloud-localds not installed)",
        },
    }
}

fn vfat_image() -> Image {
    if let Some(bytes) = cloud_localds("vfat") {
        return Image {
            bytes,
            made_by: "cloud-localds -f vfat (mkfs.vfat + mcopy)",
        };
    }
    // cloud-localds's layout: a 128 KiB FAT12 volume labelled cidata
    let mut disk = Cursor::new(vec![0u8; 128 * 1024]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*b"cidata     "),
    )
    .expect("format FAT");
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).expect("open FAT");
        for (name, data) in standard_seed_files() {
            let mut f = fs.root_dir().create_file(&name).expect("create");
            f.write_all(&data).expect("write");
        }
    }
    Image {
        bytes: disk.into_inner(),
        made_by: "fatfs (cloud-localds not installed)",
    }
}

/// The two files of the standard seed must come back byte for byte.
fn check_files(what: &str, got: &[(String, Vec<u8>)]) {
    let got: BTreeMap<&str, &[u8]> = got
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    for (name, data) in standard_seed_files() {
        assert_eq!(
            got.get(name.as_str()).copied(),
            Some(data.as_slice()),
            "{what}: {name} missing or different"
        );
    }
}

fn main() {
    let mut h = Harness::from_args();
    let max_file = 1 << 20;
    let iso = iso_image();
    let vfat = vfat_image();
    let files = standard_seed_files();
    println!(
        "standard seed: {} (user-data {} bytes, meta-data {} bytes)",
        common::standard_seed_dir().display(),
        files[0].1.len(),
        files[1].1.len()
    );
    println!(
        "ISO image: {} bytes, made by {}",
        iso.bytes.len(),
        iso.made_by
    );
    println!(
        "vfat image: {} bytes, made by {}",
        vfat.bytes.len(),
        vfat.made_by
    );

    h.bench(
        "iso9660::volume_id (probe)",
        || iso9660::volume_id(&mut Cursor::new(&iso.bytes[..])),
        |r| assert_eq!(r.as_ref().expect("volume_id").as_deref(), Some("cidata")),
    );
    h.bench(
        "iso9660::read_root_files",
        || iso9660::read_root_files(&mut Cursor::new(&iso.bytes[..]), max_file),
        |r| check_files("iso9660", r.as_ref().expect("read_root_files")),
    );
    h.bench(
        "fat::volume_label (probe)",
        || ci_agent::formats::fat::volume_label(&mut Cursor::new(&vfat.bytes[..])),
        |r| {
            let label = r.as_ref().expect("volume_label").clone();
            assert_eq!(
                label.map(|l| l.to_ascii_lowercase()).as_deref(),
                Some("cidata")
            );
        },
    );
    h.bench(
        "fat::read_root_files",
        || ci_agent::formats::fat::read_root_files(&mut Cursor::new(&vfat.bytes[..]), max_file),
        |r| check_files("vfat", r.as_ref().expect("fat read_root_files")),
    );

    let seed = Seed {
        source: "dir:benches/fixtures/standard-seed".into(),
        files: files.iter().cloned().collect(),
        ..Seed::default()
    };
    h.bench(
        "userdata::parse_seed (standard seed)",
        || userdata::parse_seed(&seed),
        |r| {
            let d = r.as_ref().expect("parse_seed");
            assert_eq!(d.instance_id, "anchor-0001");
            assert_eq!(d.hostname.as_deref(), Some("anchor-vm"));
            let cc = &d.cloud_config_json;
            assert_eq!(cc["hostname"], "anchor-vm");
            assert_eq!(cc["users"][1]["name"], "deploy");
            assert_eq!(cc["write_files"][0]["path"], "/etc/anchor/written.txt");
            assert_eq!(cc["runcmd"][0], "echo runcmd-done > /var/tmp/anchor.txt");
            assert!(d.scripts.is_empty());
        },
    );

    // For scale: what the YAML wrapper's own parser thread costs per spawn (src/formats/yaml.rs runs
    // every parse on a scoped thread with a 64 MiB stack; empty body here).
    h.bench(
        "thread spawn+join, 64 MiB stack (reference)",
        || {
            std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(64 << 20)
                    .spawn_scoped(s, || 1u32)
                    .map(|t| t.join().unwrap_or(0))
            })
        },
        |r| assert_eq!(r.as_ref().ok(), Some(&1)),
    );

    let opts = iso9660::write::WriteOptions::default();
    let mut out = Vec::with_capacity(1 << 20);
    h.bench(
        "iso9660::write::write_image",
        || {
            out.clear();
            iso9660::write::write_image(&mut out, &files, &opts).map(|()| out.len())
        },
        |r| {
            r.as_ref().expect("write_image");
        },
    );
    // the written image must read back to the same files
    let written = iso9660::write::image_bytes(&files, &opts).expect("image_bytes");
    check_files(
        "write_image round trip",
        &iso9660::read_root_files(&mut Cursor::new(&written[..]), max_file).expect("read back"),
    );
    h.finish();
}
