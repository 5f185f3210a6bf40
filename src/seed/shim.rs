//! TEMPORARY stand-in for the ISO9660/FAT writers until they land in main (shells out to
//! genisoimage / mkfs.vfat + mcopy). Removed at the next merge that brings the real ones.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Command;

fn stage(files: &[(String, Vec<u8>)]) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "ci-seed-shim-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir)?;
    for (name, data) in files {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, data)?;
    }
    Ok(dir)
}

pub mod iso9660_write {
    use super::*;
    #[derive(Debug, Clone)]
    #[allow(dead_code)]
    pub struct WriteOptions {
        pub volume_id: String,
        pub mtime: i64,
        pub rock_ridge: bool,
        pub joliet: bool,
    }
    pub fn write_image<W: Write>(
        out: &mut W,
        files: &[(String, Vec<u8>)],
        opts: &WriteOptions,
    ) -> io::Result<()> {
        let dir = stage(files)?;
        let img = dir.with_extension("iso");
        let st = Command::new("genisoimage")
            .arg("-quiet")
            .arg("-output")
            .arg(&img)
            .args(["-volid", &opts.volume_id, "-joliet", "-rock"])
            .arg(&dir)
            .status()?;
        let data = std::fs::read(&img);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&img);
        if !st.success() {
            return Err(io::Error::other("genisoimage failed"));
        }
        out.write_all(&data?)
    }
}

pub mod fat {
    use super::*;
    pub fn write_image(files: &[(String, Vec<u8>)], label: &str) -> io::Result<Vec<u8>> {
        let dir = stage(files)?;
        let img = dir.with_extension("img");
        std::fs::File::create(&img)?.set_len(1024 * 1024)?;
        let ok1 = Command::new("mkfs.vfat")
            .args(["-n", label])
            .arg(&img)
            .output()?
            .status
            .success();
        let mut ok2 = true;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            ok2 &= Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-s")
                .arg("-i")
                .arg(&img)
                .arg(e.path())
                .arg("::")
                .status()?
                .success();
        }
        let data = std::fs::read(&img);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&img);
        if !(ok1 && ok2) {
            return Err(io::Error::other("mkfs.vfat/mcopy failed"));
        }
        data
    }
}
