//! The whole module list against the recording fake, for Linux and for FreeBSD: the
//! standard e2e seed (`/work/shared/e2e/anchor-seed`) built by hand as a `SeedData`, with
//! assertions on files, modes, owners (numbers), the exact commands, idempotency, a new
//! instance-id, and hostile values.

use std::path::{Path, PathBuf};

use ci_agent::formats::userdata::cloud_config::{
    Chpasswd, CommandSpec, ManageEtcHosts, User, UserSpec, WriteFile,
};
use ci_agent::formats::userdata::{MetaData, SeedData};
use ci_agent::modules::{self, Context, Stage};
use ci_agent::platform::accounts::fake as fake_accounts;
use ci_agent::platform::config::Config;
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::{CmdOutput, OsKind, System};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW5qwDTLFzoiwFYA6liGjXBToid7HjnK5ioO0CoUEC0 anchor@e2e";

/// The anchor seed's user-data and meta-data, as the parser would type them.
fn anchor_seed(iid: &str) -> SeedData {
    let mut s = SeedData {
        source: "iso9660:/dev/sr0".into(),
        instance_id: iid.into(),
        hostname: Some("anchor-vm".into()),
        meta: MetaData {
            instance_id: Some(iid.into()),
            local_hostname: Some("anchor-vm".into()),
            ..MetaData::default()
        },
        ..SeedData::default()
    };
    let cc = &mut s.cloud_config;
    cc.hostname = Some("anchor-vm".into());
    cc.ssh_authorized_keys = vec![KEY.into()];
    cc.users = Some(vec![
        UserSpec::Default,
        UserSpec::User(Box::new(User {
            name: "deploy".into(),
            groups: vec!["sudo".into()],
            shell: Some("/bin/bash".into()),
            ssh_authorized_keys: vec![KEY.into()],
            ..User::default()
        })),
    ]);
    cc.password = Some("x1".into());
    cc.chpasswd = Some(Chpasswd {
        expire: Some(false),
        users: vec![],
    });
    cc.ssh_pwauth = Some(true);
    cc.write_files = vec![WriteFile {
        path: "/etc/anchor/written.txt".into(),
        content: b"written-by-cloud-init write_files\n".to_vec(),
        permissions: Some(0o644),
        ..WriteFile::default()
    }];
    cc.runcmd = vec![CommandSpec::Shell(
        "echo runcmd-done > /var/tmp/anchor.txt".into(),
    )];
    s
}

struct Guest {
    _dir: tempfile::TempDir,
    sys: FakeSystem,
    os: OsKind,
    config: Config,
}

impl Guest {
    fn new(os: OsKind) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(dir.path());
        sys.put("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        for k in [
            "ssh_host_rsa_key",
            "ssh_host_rsa_key.pub",
            "ssh_host_ed25519_key",
        ] {
            sys.put(format!("/etc/ssh/{k}"), "template key");
        }
        match os {
            OsKind::Linux => {
                sys.put("/etc/group", "root:x:0:\nadm:x:4:\nsudo:x:27:\n");
                sys.put(
                    "/etc/ssh/sshd_config",
                    "Include /etc/ssh/sshd_config.d/*.conf\n#PasswordAuthentication yes\nUsePAM yes\n",
                );
                sys.put("/etc/sudoers", "@includedir /etc/sudoers.d\n");
                sys.put("/etc/machine-id", "00000000000000000000000000000001\n");
                sys.put("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n");
                sys.put("/usr/bin/apt-get", "");
            }
            OsKind::FreeBsd => {
                sys.put("/etc/group", "wheel:x:0:root\noperator:x:5:root\n");
                sys.put(
                    "/etc/ssh/sshd_config",
                    "#PasswordAuthentication no\nSubsystem sftp /usr/libexec/sftp-server\n",
                );
                sys.put(
                    "/usr/local/etc/sudoers",
                    "@includedir /usr/local/etc/sudoers.d\n",
                );
                sys.put("/etc/hostid", "00000000-0000-0000-0000-000000000001\n");
                sys.put("/etc/rc.conf", "sshd_enable=\"YES\"\n");
                // sshd is not running during the early stage
                sys.on_command(
                    &["service", "sshd", "onestatus"],
                    CmdOutput {
                        code: Some(1),
                        ..CmdOutput::default()
                    },
                );
            }
        }
        fake_accounts::install(&sys);
        Guest {
            _dir: dir,
            sys,
            os,
            config: Config::defaults(os),
        }
    }

    /// Run every wanted module in stage order; returns (name, error) of failures and the
    /// warnings.
    fn run_all(&self, seed: &SeedData) -> (Vec<(String, String)>, Vec<String>) {
        let mut ctx = Context {
            sys: &self.sys,
            os: self.os,
            config: &self.config,
            seed,
            seed_dir: PathBuf::from("/var/lib/ci-agent/seed"),
            instance_dir: self
                .config
                .state_dir
                .join("instances")
                .join(&seed.instance_id),
            warnings: Vec::new(),
        };
        let mut failed = Vec::new();
        for stage in [Stage::Early, Stage::Late] {
            for m in modules::all().iter().filter(|m| m.stage() == stage) {
                if !m.wanted(&ctx) {
                    continue;
                }
                if let Err(e) = m.run(&mut ctx) {
                    failed.push((m.name().to_string(), format!("{e:#}")));
                }
            }
        }
        (failed, ctx.warnings)
    }

    fn read(&self, p: &str) -> String {
        self.sys
            .read_string(p)
            .unwrap_or_else(|| panic!("{p} missing"))
    }

    fn mode(&self, p: &str) -> u32 {
        self.sys.lstat(Path::new(p)).unwrap().unwrap().mode
    }
}

fn assert_clean((failed, warnings): (Vec<(String, String)>, Vec<String>)) {
    assert!(failed.is_empty(), "failed modules: {failed:?}");
    assert!(warnings.is_empty(), "warnings: {warnings:?}");
}

#[test]
fn linux_anchor_seed() {
    let g = Guest::new(OsKind::Linux);
    let seed = anchor_seed("anchor-0001");
    assert_clean(g.run_all(&seed));

    assert_eq!(
        g.sys.command_lines(),
        // Ed25519 and ECDSA host keys are made in-process; the RSA one by the late pass.
        // (Before issue 16: `ssh-keygen -A` first and a `passwd -l` after each useradd,
        // 7 commands in all.)
        [
            "useradd -G adm,sudo -s /bin/bash --user-group -m debian",
            "useradd -G sudo -s /bin/bash --user-group -m deploy",
            "chpasswd (arguments withheld)",
            "ssh-keygen -q -t rsa -N  -f /etc/ssh/ssh_host_rsa_key",
            "/bin/sh /var/lib/ci-agent/instances/anchor-0001/runcmd",
        ]
    );
    assert_eq!(
        g.read("/var/lib/ci-agent/instances/anchor-0001/runcmd"),
        "#!/bin/sh\necho runcmd-done > /var/tmp/anchor.txt\n"
    );
    let chpasswd = &g.sys.commands()[2];
    assert_eq!(chpasswd.stdin.as_deref(), Some(&b"debian:x1\n"[..]));
    for (t, algo) in [
        ("ed25519", "ssh-ed25519 "),
        ("ecdsa", "ecdsa-sha2-nistp256 "),
    ] {
        assert!(g
            .read(&format!("/etc/ssh/ssh_host_{t}_key"))
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_eq!(g.mode(&format!("/etc/ssh/ssh_host_{t}_key")), 0o600);
        assert!(g
            .read(&format!("/etc/ssh/ssh_host_{t}_key.pub"))
            .starts_with(algo));
    }
    assert!(g.sys.commands()[4]
        .env
        .contains(&("CI_AGENT_SEED_DIR".into(), "/var/lib/ci-agent/seed".into())));

    assert_eq!(g.read("/etc/hostname"), "anchor-vm\n");
    assert_eq!(g.sys.hostname().as_deref(), Some("anchor-vm"));
    assert!(g.sys.read_string("/etc/ssh/ssh_host_rsa_key").is_none());
    let mid = g.read("/etc/machine-id");
    assert_ne!(mid, "00000000000000000000000000000001\n");
    assert_eq!(g.mode("/etc/machine-id"), 0o444);

    for (user, ids) in [("debian", (1000, 1000)), ("deploy", (1001, 1001))] {
        let p = format!("/home/{user}/.ssh/authorized_keys");
        assert_eq!(g.read(&p), format!("{KEY}\n"));
        assert_eq!(g.mode(&p), 0o600);
        assert_eq!(g.mode(&format!("/home/{user}/.ssh")), 0o700);
        assert_eq!(g.sys.owner(&p), Some(ids));
        assert_eq!(g.sys.owner(format!("/home/{user}/.ssh")), Some(ids));
    }
    let root_keys = g.read("/root/.ssh/authorized_keys");
    assert!(root_keys.starts_with("no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=\"echo 'Please login as the user \\\"debian\\\""));
    assert!(root_keys.ends_with(&format!("{KEY}\n")));

    let sudoers = g.read("/etc/sudoers.d/90-ci-agent-users");
    assert!(
        sudoers.contains("debian ALL=(ALL) NOPASSWD:ALL\n"),
        "{sudoers}"
    );
    assert!(
        !sudoers.contains("deploy"),
        "deploy has no sudo rule: {sudoers}"
    );
    assert_eq!(g.mode("/etc/sudoers.d/90-ci-agent-users"), 0o440);
    assert_eq!(
        g.read("/etc/ssh/sshd_config.d/50-ci-agent.conf"),
        "# Written by ci-agent from the seed's ssh_pwauth.\nPasswordAuthentication yes\n"
    );
    assert!(g.read("/etc/ssh/sshd_config").starts_with("Include"));
    assert_eq!(
        g.read("/etc/anchor/written.txt"),
        "written-by-cloud-init write_files\n"
    );
    assert_eq!(g.mode("/etc/anchor/written.txt"), 0o644);
    // manage_etc_hosts not set: /etc/hosts untouched
    assert_eq!(
        g.read("/etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n"
    );

    // Same instance again (as if every semaphore were lost): nothing is created twice.
    let before: Vec<String> = [
        "/home/debian/.ssh/authorized_keys",
        "/home/deploy/.ssh/authorized_keys",
        "/root/.ssh/authorized_keys",
        "/etc/sudoers.d/90-ci-agent-users",
        "/etc/ssh/sshd_config.d/50-ci-agent.conf",
        "/etc/passwd",
        "/etc/group",
        "/etc/hostname",
    ]
    .iter()
    .map(|p| g.read(p))
    .collect();
    let n = g.sys.commands().len();
    assert_clean(g.run_all(&seed));
    let again: Vec<String> = g.sys.command_lines()[n..].to_vec();
    assert!(
        !again.iter().any(|l| l.starts_with("useradd")
            || l.starts_with("groupadd")
            || l.starts_with("usermod")),
        "{again:?}"
    );
    let after: Vec<String> = [
        "/home/debian/.ssh/authorized_keys",
        "/home/deploy/.ssh/authorized_keys",
        "/root/.ssh/authorized_keys",
        "/etc/sudoers.d/90-ci-agent-users",
        "/etc/ssh/sshd_config.d/50-ci-agent.conf",
        "/etc/passwd",
        "/etc/group",
        "/etc/hostname",
    ]
    .iter()
    .map(|p| g.read(p))
    .collect();
    assert_eq!(before, after);

    // A clone with a new instance-id gets a new identity.
    let clone = anchor_seed("clone-0002");
    g.sys.put("/etc/ssh/ssh_host_ed25519_key", "template key");
    assert_clean(g.run_all(&clone));
    assert_ne!(g.read("/etc/machine-id"), mid);
    // The template's key is gone, replaced by a new one.
    assert!(g
        .read("/etc/ssh/ssh_host_ed25519_key")
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

#[test]
fn freebsd_anchor_seed() {
    let g = Guest::new(OsKind::FreeBsd);
    let seed = anchor_seed("anchor-0001");
    assert_clean(g.run_all(&seed));
    let lines = g.sys.command_lines();
    let hostuuid = g.read("/etc/hostid");
    assert_eq!(
        lines,
        [
            format!("sysctl kern.hostuuid={}", hostuuid.trim_end()),
            "pw useradd -n freebsd -G wheel -s /bin/sh -m -h -".into(),
            "pw groupadd sudo".into(),
            "pw useradd -n deploy -G sudo -s /bin/bash -m -h -".into(),
            "pw (arguments withheld)".into(),
            "service sshd onestatus".into(),
            "ssh-keygen -q -t rsa -N  -f /etc/ssh/ssh_host_rsa_key".into(),
            "service sshd onestatus".into(),
            "/bin/sh /var/db/ci-agent/instances/anchor-0001/runcmd".into(),
            "sysctl -n kern.boottime".into(),
        ]
    );
    assert_eq!(
        g.sys.commands()[4].argv,
        ["pw", "usermod", "freebsd", "-h", "0"]
    );
    assert_eq!(g.sys.commands()[4].stdin.as_deref(), Some(&b"x1\n"[..]));

    assert_eq!(
        g.read("/etc/rc.conf.d/hostname"),
        "hostname=\"anchor-vm\"\n"
    );
    assert_eq!(g.read("/etc/rc.conf"), "sshd_enable=\"YES\"\n");
    assert_ne!(hostuuid, "00000000-0000-0000-0000-000000000001\n");
    assert_eq!(g.read("/var/db/machine-id"), hostuuid.replace('-', ""));
    assert_eq!(
        g.read("/etc/ssh/sshd_config"),
        "#PasswordAuthentication no\nSubsystem sftp /usr/libexec/sftp-server\nPasswordAuthentication yes\n"
    );
    assert!(g
        .sys
        .read_string("/etc/ssh/sshd_config.d/50-ci-agent.conf")
        .is_none());
    let sudoers = g.read("/usr/local/etc/sudoers.d/90-ci-agent-users");
    assert!(
        sudoers.contains("freebsd ALL=(ALL) NOPASSWD:ALL\n"),
        "{sudoers}"
    );
    assert_eq!(g.mode("/usr/local/etc/sudoers.d/90-ci-agent-users"), 0o440);
    let p = "/home/freebsd/.ssh/authorized_keys";
    assert_eq!(g.read(p), format!("{KEY}\n"));
    assert_eq!(g.sys.owner(p), Some((1000, 1000)));
    assert_eq!(
        g.sys.owner("/home/deploy/.ssh/authorized_keys"),
        // the fake's pw gave the new group `sudo` id 1001 first
        Some((1002, 1002))
    );

    let n = lines.len();
    assert_clean(g.run_all(&seed));
    let again = &g.sys.command_lines()[n..];
    assert!(
        !again
            .iter()
            .any(|l| l.starts_with("pw useradd") || l.starts_with("pw groupadd")),
        "{again:?}"
    );
    assert_eq!(g.read(p), format!("{KEY}\n"));
    assert_eq!(
        g.read("/etc/ssh/sshd_config")
            .matches("PasswordAuthentication yes")
            .count(),
        1
    );
}

#[test]
fn hostile_seed_fails_cleanly_and_writes_nothing_outside() {
    let g = Guest::new(OsKind::Linux);
    let root = g.sys.root().to_path_buf();
    // ~/.ssh of an existing user points at /etc; a write_files target is a symlink.
    g.sys.put(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::/home/debian:/bin/bash\n",
    );
    std::fs::create_dir_all(root.join("home/debian")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("home/debian/.ssh")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("etc/target")).unwrap();

    let mut seed = anchor_seed("evil");
    seed.cloud_config.hostname = Some("x;reboot".into());
    seed.cloud_config.users = Some(vec![
        UserSpec::Default,
        UserSpec::User(Box::new(User {
            name: "../x".into(),
            ..User::default()
        })),
    ]);
    seed.cloud_config.write_files.push(WriteFile {
        path: "/etc/target".into(),
        content: b"pwned".to_vec(),
        ..WriteFile::default()
    });
    seed.cloud_config.manage_etc_hosts = Some(ManageEtcHosts::Template);
    seed.cloud_config.runcmd = (0..5000)
        .map(|i| CommandSpec::Argv(vec!["true".into(), i.to_string()]))
        .collect();
    let (failed, _warnings) = g.run_all(&seed);
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["hostname", "users", "ssh_authorized_keys", "write_files"],
        "{failed:?}"
    );
    assert!(failed[0]
        .1
        .contains("hostname: invalid hostname \"x;reboot\""));
    assert!(failed[1].1.contains("users[1].name: invalid name \"../x\""));
    assert!(failed[2]
        .1
        .contains("refusing to follow symlink /home/debian/.ssh"));
    assert!(failed[3]
        .1
        .contains("write_files[1] (/etc/target): refusing to write through symlink"));
    assert!(!root.join("etc/authorized_keys").exists());
    assert!(!root.join("etc/shadow").exists());
    assert!(g.sys.read_string("/etc/hostname").is_none());
    assert!(g.sys.hostname().is_none());
    assert_eq!(
        g.read("/etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n"
    );
    assert!(!g
        .sys
        .command_lines()
        .iter()
        .any(|l| l.starts_with("useradd")));
    // the other modules still ran, the huge runcmd list included (one script)
    let script = g.read("/var/lib/ci-agent/instances/evil/runcmd");
    assert_eq!(
        script.lines().filter(|l| l.starts_with("'true' ")).count(),
        5000
    );

    let mut seed = anchor_seed("evil2");
    seed.cloud_config.hostname = Some("a".repeat(1000));
    seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
        name: "root;rm".into(),
        ..User::default()
    }))]);
    let (failed, _) = g.run_all(&seed);
    assert!(failed[0].1.contains("longer than 253"), "{failed:?}");
    assert!(
        failed[0].1.len() < 300,
        "the error does not echo 1000 chars"
    );
    assert!(
        failed[1]
            .1
            .contains("users[0].name: invalid name \"root;rm\""),
        "{failed:?}"
    );
}

#[test]
fn real_system_under_a_root_prefix_records_and_degrades() {
    // The real HostSystem under --root DIR: commands are recorded, not run, so the new
    // users never reach /etc/passwd. The run goes on with warnings, not failures.
    use ci_agent::platform::host::HostSystem;
    let dir = tempfile::tempdir().unwrap();
    let sys = HostSystem::new(dir.path());
    assert!(!sys.is_live());
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nadm:x:4:\nsudo:x:27:\n",
    )
    .unwrap();
    let config = Config::defaults(OsKind::Linux);
    let seed = anchor_seed("anchor-0001");
    let mut ctx = Context {
        sys: &sys,
        os: OsKind::Linux,
        config: &config,
        seed: &seed,
        seed_dir: PathBuf::from("/var/lib/ci-agent/seed"),
        instance_dir: PathBuf::from("/var/lib/ci-agent/instances/anchor-0001"),
        warnings: Vec::new(),
    };
    let mut failed = Vec::new();
    for m in modules::all() {
        if m.wanted(&ctx) {
            if let Err(e) = m.run(&mut ctx) {
                failed.push(format!("{}: {e:#}", m.name()));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ctx
        .warnings
        .iter()
        .any(|w| w.contains("user deploy was not created because commands are recorded")));
    assert!(ctx
        .warnings
        .iter()
        .any(|w| w.contains("keys for debian not installed")));
    let recorded: Vec<String> = sys
        .recorded_commands()
        .iter()
        .map(|c| c.display())
        .collect();
    assert!(recorded.contains(&"useradd -G sudo -s /bin/bash --user-group -m deploy".to_string()));
    assert_eq!(sys.recorded_hostname().as_deref(), Some("anchor-vm"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/anchor/written.txt")).unwrap(),
        "written-by-cloud-init write_files\n"
    );
    // the root's keys are installed (root exists in the template)
    assert!(dir.path().join("root/.ssh/authorized_keys").exists());
}

/// The anchor seed's files, verbatim (`/work/shared/e2e/anchor-seed`).
const ANCHOR_USER_DATA: &str = r#"#cloud-config
hostname: anchor-vm
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW5qwDTLFzoiwFYA6liGjXBToid7HjnK5ioO0CoUEC0 anchor@e2e
users:
  - default
  - name: deploy
    groups: [sudo]
    shell: /bin/bash
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW5qwDTLFzoiwFYA6liGjXBToid7HjnK5ioO0CoUEC0 anchor@e2e
password: x1
chpasswd:
  expire: False
ssh_pwauth: true
write_files:
  - path: /etc/anchor/written.txt
    permissions: '0644'
    content: |
      written-by-cloud-init write_files
runcmd:
  - "echo runcmd-done > /var/tmp/anchor.txt"
"#;
const ANCHOR_META_DATA: &str = "instance-id: anchor-0001\nlocal-hostname: anchor-vm\n";

fn parsed(files: &[(&str, &[u8])]) -> SeedData {
    let seed = ci_agent::formats::userdata::Seed {
        source: "dir:/seed".into(),
        files: files
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect(),
        ..Default::default()
    };
    ci_agent::formats::userdata::parse_seed(&seed).expect("seed parses")
}

#[test]
fn anchor_seed_from_yaml_matches_the_hand_built_one() {
    let data = parsed(&[
        ("user-data", ANCHOR_USER_DATA.as_bytes()),
        ("meta-data", ANCHOR_META_DATA.as_bytes()),
    ]);
    let hand = anchor_seed("anchor-0001");
    assert_eq!(data.instance_id, "anchor-0001");
    assert_eq!(data.hostname.as_deref(), Some("anchor-vm"));
    assert_eq!(data.cloud_config, hand.cloud_config);

    // and it drives the modules to the same commands on both OSes
    for os in [OsKind::Linux, OsKind::FreeBsd] {
        let a = Guest::new(os);
        let b = Guest::new(os);
        assert_clean(a.run_all(&data));
        assert_clean(b.run_all(&hand));
        let strip = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .filter(|l| !l.starts_with("sysctl kern.hostuuid"))
                .collect()
        };
        assert_eq!(strip(a.sys.command_lines()), strip(b.sys.command_lines()));
    }
}

#[test]
fn bundled_example_seed_applies_on_both_oses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let (ud, md, conf) = (read("user-data"), read("meta-data"), read("CONFIG"));
    let data = parsed(&[("user-data", &ud), ("meta-data", &md), ("CONFIG", &conf)]);
    for os in [OsKind::Linux, OsKind::FreeBsd] {
        let g = Guest::new(os);
        if os == OsKind::FreeBsd {
            g.sys.put("/usr/local/sbin/pkg", "");
        }
        let (failed, warnings) = g.run_all(&data);
        assert!(failed.is_empty(), "{os:?}: {failed:?}");
        assert!(warnings.is_empty(), "{os:?}: {warnings:?}");
        let lines = g.sys.command_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("install") && l.contains("curl")),
            "{lines:?}"
        );
        assert_eq!(g.mode("/etc/demo/app.env"), 0o600);
        assert_eq!(g.read("/etc/demo/app.env"), "APP_MODE=production\n");
        let sudo = g.read(match os {
            OsKind::Linux => "/etc/sudoers.d/90-ci-agent-users",
            OsKind::FreeBsd => "/usr/local/etc/sudoers.d/90-ci-agent-users",
        });
        assert!(sudo.contains("deploy ALL=(ALL) NOPASSWD:ALL"), "{sudo}");
        let hosts = g.sys.read_string("/etc/hosts").unwrap_or_default();
        assert!(
            hosts.contains("demo-clone-01.example.internal demo-clone-01 # ci-agent hostname"),
            "{hosts}"
        );
    }
}

/// A hostile network-config fails the network module alone, with the file position, and
/// writes nothing: an interface name that would leave /etc/systemd/network, one with a
/// newline that would inject a line, a gateway outside the subnet.
#[test]
fn hostile_network_config_fails_only_the_network_module() {
    for (text, want) in [
        (
            "version: 2\nethernets:\n  \"../../x\":\n    dhcp4: true\n",
            "network-config:3:3: ../../x: invalid interface name \"../../x\"",
        ),
        (
            "version: 2\nethernets:\n  \"eth0\\nDNS=6.6.6.6\":\n    dhcp4: true\n",
            "network-config:3:3: ",
        ),
        (
            "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - {type: static, address: 10.0.0.7/24, gateway: 10.0.9.1}\n",
            "network-config:6:55: eth0: gateway 10.0.9.1 is outside every subnet",
        ),
    ] {
        let g = Guest::new(OsKind::Linux);
        g.sys.put(
            "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "",
        );
        g.sys.put("/var/lib/ci-agent/seed/network-config", text);
        let mut seed = anchor_seed("net-evil");
        seed.files.push("network-config".into());
        let (failed, _) = g.run_all(&seed);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, "network");
        assert!(failed[0].1.starts_with(want), "{}", failed[0].1);
        assert!(g
            .sys
            .read_dir(Path::new("/etc/systemd/network"))
            .unwrap_or_default()
            .is_empty());
        assert_eq!(g.read("/etc/hostname"), "anchor-vm\n", "the other modules ran");
    }
}
