//! `ci-agent seal` on fake roots with the Linux and FreeBSD layouts: what is removed,
//! truncated, kept, created; `--keep`, `--dry-run`, the refusal on `/`, symlinks.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use ci_agent::agent::seal::{seal, Item, SealOptions};
use ci_agent::platform::config::Config;
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::OsKind;

fn put(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn exists(root: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(root.join(rel)).is_ok()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn linux_tree(root: &Path) {
    put(root, "etc/ssh/ssh_host_ed25519_key", "PRIVATE");
    put(root, "etc/ssh/ssh_host_ed25519_key.pub", "pub");
    put(root, "etc/ssh/ssh_host_rsa_key", "PRIVATE");
    put(root, "etc/ssh/sshd_config", "Port 22\n");
    put(root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    std::fs::set_permissions(
        root.join("etc/machine-id"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    put(
        root,
        "var/lib/dbus/machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    put(root, "var/lib/dhcp/dhclient.eth0.leases", "lease {}");
    put(root, "var/lib/dhcp/keep.conf", "x");
    put(root, "var/lib/NetworkManager/internal-x-eth0.lease", "x");
    put(root, "root/.bash_history", "passwd\n");
    put(root, "root/.profile", "keep\n");
    put(root, "home/debian/.bash_history", "ls\n");
    put(root, "home/debian/.sh_history", "ls\n");
    put(root, "home/debian/notes.txt", "keep\n");
    put(root, "var/log/syslog", "lots of lines\n");
    put(root, "var/log/syslog.1", "old\n");
    put(root, "var/log/dpkg.log.2.gz", "gz");
    put(root, "var/log/apt/history.log", "apt\n");
    put(root, "var/log/journal/abc/system.journal", "bin");
    put(root, "var/log/empty.log", "");
    put(root, "var/lib/ci-agent/status.json", "{}");
    put(root, "var/lib/ci-agent/instances/i-1/sem/runcmd", "x");
    put(root, "root/bootstrap/retry-amount", "3\n");
    put(root, "root/bootstrap/start-bootstrap", "");
    put(root, "tmp/junk", "x");
    put(root, "tmp/dir/deep", "x");
    put(root, "var/tmp/junk2", "x");
    put(root, "var/cache/apt/archives/vim_9.0_amd64.deb", "deb");
    put(root, "var/cache/apt/archives/lock", "");
    put(root, "var/cache/apt/archives/partial/x.deb", "deb");
}

fn freebsd_tree(root: &Path) {
    put(root, "etc/ssh/ssh_host_ecdsa_key", "PRIVATE");
    put(root, "etc/ssh/ssh_host_ecdsa_key.pub", "pub");
    put(root, "etc/hostid", "uuid\n");
    put(root, "var/db/machine-id", "id\n");
    put(root, "var/db/dhclient.leases.vtnet0", "lease {}");
    put(root, "var/db/pkg/local.sqlite", "keep");
    put(root, "usr/home/freebsd/.sh_history", "ls\n");
    put(root, "usr/home/freebsd/.history", "ls\n");
    std::os::unix::fs::symlink("usr/home", root.join("home")).unwrap();
    put(root, "root/.sh_history", "x\n");
    put(root, "var/log/messages", "boot\n");
    put(root, "var/log/messages.0.bz2", "bz");
    put(root, "var/log/utx.log", "x");
    put(root, "var/db/ci-agent/status.json", "{}");
    put(root, "var/cache/pkg/vim-9.0.pkg", "pkg");
    put(root, "tmp/.X11-unix/X0", "");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
}

#[test]
fn linux_layout_is_sealed() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    linux_tree(r);
    let inode =
        |rel: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(r.join(rel)).unwrap());
    let syslog_inode = inode("var/log/syslog");
    let o = bin()
        .args(["seal", "--os", "linux", "--root"])
        .arg(r)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );

    for gone in [
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/ssh/ssh_host_rsa_key",
        "var/lib/dbus/machine-id",
        "var/lib/dhcp/dhclient.eth0.leases",
        "var/lib/NetworkManager/internal-x-eth0.lease",
        "root/.bash_history",
        "home/debian/.bash_history",
        "home/debian/.sh_history",
        "var/log/syslog.1",
        "var/log/dpkg.log.2.gz",
        "var/log/journal/abc/system.journal",
        "var/lib/ci-agent",
        "root/bootstrap/retry-amount",
        "tmp/junk",
        "tmp/dir",
        "var/tmp/junk2",
        "var/cache/apt/archives/vim_9.0_amd64.deb",
        "var/cache/apt/archives/partial/x.deb",
    ] {
        assert!(!exists(r, gone), "{gone} should be gone");
    }
    for kept in [
        "etc/ssh/sshd_config",
        "var/lib/dhcp/keep.conf",
        "root/.profile",
        "home/debian/notes.txt",
        "root/bootstrap/start-bootstrap",
        "var/cache/apt/archives/lock",
        "var/log/journal/abc",
        "var/log/apt",
        "tmp",
        "var/tmp",
    ] {
        assert!(exists(r, kept), "{kept} should be kept");
    }
    // machine-id: emptied, not deleted, mode kept.
    assert_eq!(read(r, "etc/machine-id"), "");
    let mode = std::fs::metadata(r.join("etc/machine-id"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
    // Logs truncated, directories kept.
    assert_eq!(read(r, "var/log/syslog"), "");
    assert_eq!(
        inode("var/log/syslog"),
        syslog_inode,
        "truncated in place: owner, mode and labels stay"
    );
    assert_eq!(read(r, "var/log/apt/history.log"), "");
    // The sentinel.
    assert!(exists(r, "firstboot"));
    // One line per action.
    assert!(out.contains("removed /etc/ssh/ssh_host_rsa_key\n"), "{out}");
    assert!(out.contains("truncated /etc/machine-id\n"), "{out}");
    assert!(out.contains("truncated /var/log/syslog\n"), "{out}");
    assert!(out.contains("created /firstboot\n"), "{out}");
    assert!(
        !out.contains("empty.log"),
        "empty files are left alone: {out}"
    );

    // Sealing again has nothing left to do (but keeps the sentinel).
    let o = bin()
        .args(["seal", "--os", "linux", "--root"])
        .arg(r)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "nothing to do: already sealed\n"
    );
}

#[test]
fn freebsd_layout_is_sealed_without_following_the_home_symlink() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    freebsd_tree(r);
    let o = bin()
        .args(["seal", "--os", "freebsd", "--root"])
        .arg(r)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for gone in [
        "etc/ssh/ssh_host_ecdsa_key",
        "etc/ssh/ssh_host_ecdsa_key.pub",
        "etc/hostid",
        "var/db/machine-id",
        "var/db/dhclient.leases.vtnet0",
        "usr/home/freebsd/.sh_history",
        "usr/home/freebsd/.history",
        "root/.sh_history",
        "var/log/messages.0.bz2",
        "var/db/ci-agent",
        "var/cache/pkg/vim-9.0.pkg",
        "tmp/.X11-unix",
    ] {
        assert!(!exists(r, gone), "{gone} should be gone");
    }
    assert!(exists(r, "var/db/pkg/local.sqlite"));
    assert!(exists(r, "home"), "the /home symlink itself stays");
    assert_eq!(read(r, "var/log/messages"), "");
    assert_eq!(read(r, "var/log/utx.log"), "");
    assert!(exists(r, "firstboot"));
    // Each history removed once, through the real directory.
    assert_eq!(out.matches(".sh_history").count(), 2, "{out}");
}

#[test]
fn an_absolute_symlink_in_the_image_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    put(outside.path(), "victim/.bash_history", "host secret");
    put(outside.path(), "logs/host.log", "host log");
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("var")).unwrap();
    // Absolute links: followed naively they would reach the host's files.
    std::os::unix::fs::symlink(outside.path(), r.join("home")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("logs"), r.join("var/log")).unwrap();
    let sys = FakeSystem::new(r);
    let report = seal(
        &sys,
        &Config::defaults(OsKind::Linux),
        &SealOptions::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(read(outside.path(), "victim/.bash_history"), "host secret");
    assert_eq!(read(outside.path(), "logs/host.log"), "host log");
}

#[test]
fn keep_and_dry_run() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    linux_tree(r);
    let sys = FakeSystem::new(r);
    let cfg = Config::defaults(OsKind::Linux);

    // Dry run: everything listed, nothing changed.
    let report = seal(
        &sys,
        &cfg,
        &SealOptions {
            dry_run: true,
            ..SealOptions::default()
        },
    );
    assert!(report.errors.is_empty());
    assert!(report
        .actions
        .contains(&"would remove /etc/ssh/ssh_host_rsa_key".to_string()));
    assert!(report
        .actions
        .contains(&"would create /firstboot".to_string()));
    assert!(report.actions.iter().all(|a| a.starts_with("would ")));
    assert!(exists(r, "etc/ssh/ssh_host_rsa_key"));
    assert!(!exists(r, "firstboot"));
    assert_eq!(read(r, "var/log/syslog"), "lots of lines\n");
    assert!(sys.commands().is_empty());

    // --keep
    let keep: BTreeSet<Item> = [Item::SshHostKeys, Item::Logs, Item::Firstboot].into();
    let report = seal(
        &sys,
        &cfg,
        &SealOptions {
            keep,
            dry_run: false,
        },
    );
    assert!(report.errors.is_empty());
    assert!(exists(r, "etc/ssh/ssh_host_rsa_key"));
    assert_eq!(read(r, "var/log/syslog"), "lots of lines\n");
    assert!(!exists(r, "firstboot"));
    assert!(!exists(r, "root/.bash_history"));
    assert_eq!(read(r, "etc/machine-id"), "");

    // Through the CLI: --keep parsing, unknown items.
    let o = bin()
        .args([
            "seal",
            "--os",
            "linux",
            "--keep",
            "ssh-host-keys,logs",
            "--keep",
            "firstboot",
            "--root",
        ])
        .arg(r)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(exists(r, "etc/ssh/ssh_host_rsa_key"));
    let o = bin()
        .args(["seal", "--keep", "everything", "--root"])
        .arg(r)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown item"));
}

#[test]
fn refuses_the_running_system_without_yes() {
    let o = bin().args(["seal"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--yes"));
    let o = bin().args(["seal", "--root", "/"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin().args(["seal", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("shell-history"));
}

/// Seal undoes the network config a clone's seed made the agent render: the rendered files
/// go, the template files it had changed come back, before the state dir (and the record)
/// is removed.
#[test]
fn seal_undoes_rendered_network_config() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    put(
        r,
        "etc/network/interfaces",
        "auto ens3\niface ens3 inet dhcp\n",
    );
    let sys = FakeSystem::new(r);
    let cfg = Config::defaults(OsKind::Linux);
    let files = vec![
        ci_agent::network::OutFile::new(
            "/etc/network/interfaces.d/50-ci-agent",
            "iface ens3 inet static\n".into(),
        ),
        ci_agent::network::OutFile::new("/etc/network/interfaces", "#ci-agent# auto ens3\n".into()),
    ];
    ci_agent::network::apply::write(&sys, &cfg.state_dir, "i-1", "eni", &files).unwrap();
    assert!(exists(r, "etc/network/interfaces.d/50-ci-agent"));
    let report = seal(&sys, &cfg, &SealOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!exists(r, "etc/network/interfaces.d/50-ci-agent"));
    assert_eq!(
        read(r, "etc/network/interfaces"),
        "auto ens3\niface ens3 inet dhcp\n"
    );
    assert!(report
        .actions
        .iter()
        .any(|a| a == "restored /etc/network/interfaces"));
    assert!(!exists(r, "var/lib/ci-agent"));
}
