//! The agent's own configuration file (`/etc/ci-agent.conf` on Linux,
//! `/usr/local/etc/ci-agent.conf` on FreeBSD, `--config FILE`): YAML, every key optional,
//! unknown keys are an error (a typo in a first-boot config should not pass silently).

use std::path::PathBuf;

use crate::platform::OsKind;

/// Which seed sources the run consults, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasourceKind {
    /// A `cidata` device, image or directory, or `ds=nocloud` on the command line / SMBIOS.
    Nocloud,
    /// The vm-bootstrap HTTP endpoint.
    Bootstrap,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DefaultUser {
    pub name: String,
    pub groups: Vec<String>,
    pub shell: Option<String>,
    /// sudoers rules for the default user.
    pub sudo: Vec<String>,
    pub gecos: Option<String>,
    /// Lock the password (default true, as cloud-init).
    pub lock_passwd: bool,
}

/// vm-bootstrap compatible endpoint settings (`bootstrap.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapConfig {
    /// `bootstrap.url`, default `http://10.0.2.100/vm-bootstrap`.
    pub url: String,
    /// `bootstrap.dir`: holds `start-bootstrap`, `bootstrap-max-retry`, `retry-amount`.
    pub dir: PathBuf,
    /// `bootstrap.log`: script output is appended here.
    pub log: PathBuf,
    /// `bootstrap.interval_secs`: wait between failed attempts within one boot.
    pub interval_secs: u64,
    /// `bootstrap.script_timeout_secs`: kill the script after this long.
    pub script_timeout_secs: u64,
    /// `bootstrap.max_retry`: used when `bootstrap-max-retry` is absent.
    pub max_retry: u32,
    /// `bootstrap.connect_timeout_secs`, `bootstrap.timeout_secs` (whole request).
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    /// `bootstrap.max_bytes`: largest script accepted.
    pub max_bytes: u64,
}

/// Clone identity reset on a new instance (`identity.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IdentityConfig {
    pub regenerate_ssh_host_keys: bool,
    pub reset_machine_id: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    pub os: OsKind,
    pub default_user: DefaultUser,
    pub datasources: Vec<DatasourceKind>,
    /// `firstboot_sentinel`: path of the sentinel (default `/firstboot`).
    pub firstboot_sentinel: PathBuf,
    /// `require_firstboot`: act only while the sentinel exists (default false).
    pub require_firstboot: bool,
    /// `rerun_on_new_instance_id`: a new instance-id triggers a run (default true).
    pub rerun_on_new_instance_id: bool,
    pub state_dir: PathBuf,
    pub log_file: PathBuf,
    /// Largest file read from a seed (default 16 MiB).
    pub max_seed_file_bytes: u64,
    /// Seconds to wait for a seed device to appear (SCSI scans are asynchronous).
    pub seed_wait_secs: u64,
    pub bootstrap: BootstrapConfig,
    pub identity: IdentityConfig,
}

impl Config {
    /// The defaults for an OS (what runs when no config file exists).
    pub fn defaults(os: OsKind) -> Self {
        let groups = match os {
            OsKind::Linux => vec!["adm".into(), "sudo".into()],
            OsKind::FreeBsd => vec!["wheel".into()],
        };
        Config {
            os,
            default_user: DefaultUser {
                name: os.default_user().into(),
                groups,
                shell: Some(match os {
                    OsKind::Linux => "/bin/bash".into(),
                    OsKind::FreeBsd => "/bin/sh".into(),
                }),
                sudo: vec!["ALL=(ALL) NOPASSWD:ALL".into()],
                gecos: None,
                lock_passwd: true,
            },
            datasources: vec![DatasourceKind::Nocloud, DatasourceKind::Bootstrap],
            firstboot_sentinel: "/firstboot".into(),
            require_firstboot: false,
            rerun_on_new_instance_id: true,
            state_dir: os.state_dir(),
            log_file: os.log_file(),
            max_seed_file_bytes: 16 << 20,
            seed_wait_secs: 10,
            bootstrap: BootstrapConfig {
                url: "http://10.0.2.100/vm-bootstrap".into(),
                dir: "/root/bootstrap".into(),
                log: "/var/log/vm-bootstrap.log".into(),
                interval_secs: 60,
                script_timeout_secs: 3600,
                max_retry: 10,
                connect_timeout_secs: 5,
                timeout_secs: 30,
                max_bytes: 16 << 20,
            },
            identity: IdentityConfig {
                regenerate_ssh_host_keys: true,
                reset_machine_id: true,
            },
        }
    }
}

/// Load the config: `path` if given (must exist), else the OS default path if it exists,
/// else the defaults. (Placeholder: parsing lands with the run.)
pub fn load(
    sys: &dyn crate::platform::System,
    path: Option<&std::path::Path>,
    os: OsKind,
) -> anyhow::Result<Config> {
    let default = os.config_path();
    let path = path.unwrap_or(&default);
    if sys.exists(path) {
        anyhow::bail!("{}: config parsing not implemented yet", path.display());
    }
    Ok(Config::defaults(os))
}
