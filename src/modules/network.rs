//! Key: `network-config` (seed file), meta-data `network-interfaces`. cloud-init: `stages.apply_network_config` (no cc_ module; the datasource's network config).
//!
//! Every clone gets its own network: the seed's `network-config` (v1 or v2, bare or under
//! `network:`), else meta-data `network-interfaces` (ENI text), is parsed and validated in
//! full, rendered for the network manager the template uses, and written before
//! networking starts (early pass; systemd `network-pre.target`, FreeBSD before
//! `NETWORKING`). Once per instance: a new instance-id renders again, after undoing what
//! the previous instance rendered (its files removed, the files it changed restored).
//!
//! - No network input in the seed: the template's network is left as it is (a previous
//!   instance's rendering is undone, so the clone is back on the template's config).
//! - `network: {config: disabled}` in the agent's config, `network-config=disabled` on the
//!   kernel command line, or `config: disabled` in the seed's network-config: nothing is
//!   touched.
//! - Renderer (`network.renderer`, default `auto`): FreeBSD → rc.conf.d; Linux →
//!   NetworkManager when it is enabled, else netplan when it is in use (`netplan` and a
//!   YAML file in `/etc/netplan`; then `netplan generate` is run, since its generator ran
//!   before us), else systemd-networkd when it is enabled, else ifupdown ENI (Alpine: the
//!   whole `/etc/network/interfaces`).
//! - DNS: networkd `DNS=` reaches `/etc/resolv.conf` only through systemd-resolved, ENI
//!   `dns-nameservers` only through resolvconf: without them (and on FreeBSD) the module
//!   writes `/etc/resolv.conf` itself, unless it is a symlink (someone manages it).
//! - Bad input fails this module only, naming `file:line:column`; nothing is written and
//!   the template's config stays in force. Keys a renderer cannot express are warnings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::network::{self, apply, render_eni, NetConfig, Nics, OutFile, Parsed, Rendering};
use crate::platform::config::NetworkRenderer;
use crate::platform::{cmdline_has, kernel_cmdline, Cmd, OsKind};

pub struct Network;

const RESOLV_CONF: &str = "/etc/resolv.conf";

impl Module for Network {
    fn name(&self) -> &'static str {
        "network"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.config.network.disabled
            && (input(ctx).is_some() || ctx.sys.exists(&apply::record_path(&ctx.config.state_dir)))
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        if cmdline_disabled(ctx) {
            log::info!("network-config=disabled on the kernel command line: network left alone");
            return Ok(());
        }
        let mut warnings = Vec::new();
        let parsed = match input(ctx) {
            Some(Input::File(path)) => {
                let data = ctx
                    .sys
                    .read_file(&path, ctx.config.max_seed_file_bytes)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(network::parse("network-config", &data, &mut warnings)?)
            }
            Some(Input::Eni(text)) => Some(Parsed::Config(network::eni::parse(
                "meta-data network-interfaces",
                &text,
                &mut warnings,
            )?)),
            None => None,
        };
        for w in warnings.drain(..) {
            ctx.warn(w);
        }
        let cfg = match parsed {
            Some(Parsed::Disabled) => {
                log::info!("network-config says `config: disabled`: network left alone");
                return Ok(());
            }
            None => {
                let undone = apply::undo(ctx.sys, &ctx.config.state_dir)?;
                for a in &undone {
                    log::info!("no network config in this seed: {a}");
                }
                return Ok(());
            }
            Some(Parsed::Config(c)) => c,
        };
        settle_names(ctx);
        let list = SysNics { ctx }.list();
        let (renderer, mut out) = render(ctx, &cfg, &list)?;
        let renames = std::mem::take(&mut out.renames);
        for w in out.warnings.drain(..) {
            ctx.warn(w);
        }
        // Everything is decided; only now is anything changed.
        let previous = apply::undo(ctx.sys, &ctx.config.state_dir)?;
        for a in &previous {
            log::info!("previous instance's network config: {a}");
        }
        let files = finish(ctx, &cfg, renderer, out)?;
        apply::write(
            ctx.sys,
            &ctx.config.state_dir,
            &ctx.seed.instance_id,
            renderer,
            &files,
        )?;
        for f in &files {
            log::info!("network: wrote {}", f.path.display());
        }
        if renderer == "netplan" {
            // Its systemd generator ran before us: regenerate /run/systemd/network now.
            let out = ctx.sys.run(&Cmd::new(["netplan", "generate"]));
            let failed = match &out {
                Ok(o) if o.success() => None,
                Ok(o) => Some(crate::platform::exec::describe_exit(o)),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failed {
                apply::undo(ctx.sys, &ctx.config.state_dir)?;
                bail!(
                    "netplan generate failed ({why}); {} removed, the template's config stays",
                    network::render_netplan::FILE
                );
            }
        }
        if ctx.os == OsKind::Linux {
            for (mac, new) in renames {
                if let Some((old, _)) = list.iter().find(|(n, m)| *m == mac && n != &new) {
                    let cmd = Cmd::new(["ip", "link", "set", "dev", old, "name", &new]);
                    match ctx.sys.run(&cmd) {
                        Ok(o) if o.success() => log::info!("network: renamed {old} to {new}"),
                        _ => ctx.warn(format!(
                            "renaming {old} to {new} failed; it takes effect at the next boot"
                        )),
                    }
                }
            }
        }
        Ok(())
    }
}

enum Input {
    File(PathBuf),
    Eni(String),
}

fn input(ctx: &Context) -> Option<Input> {
    if ctx.seed.files.iter().any(|f| f == "network-config") {
        return Some(Input::File(ctx.seed_dir.join("network-config")));
    }
    ctx.seed
        .meta
        .raw
        .get("network-interfaces")
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(|s| Input::Eni(s.to_string()))
}

fn cmdline_disabled(ctx: &Context) -> bool {
    cmdline_has(&kernel_cmdline(ctx.sys, ctx.os), "network-config=disabled")
}

/// The NICs as the system shows them: Linux `/sys/class/net/*/address`, FreeBSD `ifconfig -a`.
struct SysNics<'a, 'b> {
    ctx: &'a Context<'b>,
}

impl Nics for SysNics<'_, '_> {
    fn list(&self) -> Vec<(String, String)> {
        let sys = self.ctx.sys;
        match self.ctx.os {
            OsKind::Linux => {
                let base = Path::new("/sys/class/net");
                let mut v = Vec::new();
                for n in sys.read_dir(base).unwrap_or_default() {
                    if n == "lo" {
                        continue;
                    }
                    let mac = sys
                        .read_file(&base.join(&n).join("address"), 64)
                        .map(|d| String::from_utf8_lossy(&d).trim().to_ascii_lowercase())
                        .unwrap_or_default();
                    v.push((n, mac));
                }
                v
            }
            OsKind::FreeBsd => {
                let out = match sys.run(&Cmd::new(["ifconfig", "-a"])) {
                    Ok(o) if o.success() => o.stdout,
                    _ => return Vec::new(),
                };
                parse_ifconfig(&String::from_utf8_lossy(&out))
            }
        }
    }
}

/// (name, MAC) of each interface in `ifconfig -a` output (loopbacks skipped).
pub fn parse_ifconfig(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            if let Some((name, _)) = line.split_once(": flags=") {
                v.push((name.to_string(), String::new()));
            }
        } else if let Some(mac) = line.trim().strip_prefix("ether ") {
            if let Some(last) = v.last_mut() {
                last.1 = mac.trim().to_ascii_lowercase();
            }
        }
    }
    v.retain(|(n, _)| !n.starts_with("lo"));
    v
}

/// ifupdown names interfaces, so the names must be the final ones: early in the boot
/// udev may not have renamed a NIC yet (`eth0` becoming `ens2`). Wait for its queue, as
/// Debian's `ifupdown-pre.service` does before `networking.service`. Best effort: on
/// failure the names are read as they are.
fn settle_names(ctx: &Context) {
    if ctx.os != OsKind::Linux || !matches!(pick(ctx), Ok(NetworkRenderer::Eni)) {
        return;
    }
    let Some(udevadm) = ["/bin/udevadm", "/usr/bin/udevadm", "/sbin/udevadm"]
        .into_iter()
        .find(|p| ctx.sys.exists(Path::new(p)))
    else {
        return;
    };
    match ctx.sys.run(&Cmd::new([udevadm, "settle", "--timeout=30"])) {
        Ok(o) if o.success() => {}
        Ok(o) => log::warn!(
            "network: udevadm settle: {}; interface names may still change",
            crate::platform::exec::describe_exit(&o)
        ),
        Err(e) => log::warn!("network: udevadm settle: {e}; interface names may still change"),
    }
}

fn enabled(ctx: &Context, unit: &str) -> bool {
    [
        "multi-user.target.wants",
        "sysinit.target.wants",
        "network-online.target.wants",
    ]
    .iter()
    .any(|t| {
        ctx.sys
            .exists(&Path::new("/etc/systemd/system").join(t).join(unit))
    })
}

fn pick(ctx: &Context) -> anyhow::Result<NetworkRenderer> {
    let r = ctx.config.network.renderer;
    if r != NetworkRenderer::Auto {
        return Ok(r);
    }
    if ctx.os == OsKind::FreeBsd {
        return Ok(NetworkRenderer::Freebsd);
    }
    let has = |p: &str| ctx.sys.exists(Path::new(p));
    if enabled(ctx, "NetworkManager.service") {
        return Ok(NetworkRenderer::NetworkManager);
    }
    let netplan_yaml = ctx
        .sys
        .read_dir(Path::new("/etc/netplan"))
        .unwrap_or_default()
        .iter()
        .any(|n| n.ends_with(".yaml") && n != "50-ci-agent.yaml");
    if (has("/usr/sbin/netplan") || has("/sbin/netplan")) && netplan_yaml {
        return Ok(NetworkRenderer::Netplan);
    }
    if enabled(ctx, "systemd-networkd.service") {
        return Ok(NetworkRenderer::Networkd);
    }
    if has("/etc/network/interfaces") || has("/sbin/ifup") || has("/usr/sbin/ifup") {
        return Ok(NetworkRenderer::Eni);
    }
    bail!("no supported network manager found (looked for NetworkManager, systemd-networkd, netplan, ifupdown); set network.renderer in the agent's config")
}

fn render(
    ctx: &Context,
    cfg: &NetConfig,
    nics: &dyn Nics,
) -> anyhow::Result<(&'static str, Rendering)> {
    Ok(match pick(ctx)? {
        NetworkRenderer::Networkd => ("networkd", network::render_networkd::render(cfg)),
        NetworkRenderer::NetworkManager => ("network-manager", network::render_nm::render(cfg)),
        NetworkRenderer::Netplan => ("netplan", network::render_netplan::render(cfg)),
        NetworkRenderer::Eni => {
            let whole = ctx.sys.exists(Path::new("/etc/alpine-release"));
            (
                "eni",
                render_eni::render(cfg, nics, whole).map_err(anyhow::Error::msg)?,
            )
        }
        NetworkRenderer::Freebsd => (
            "freebsd",
            network::render_freebsd::render(cfg, nics).map_err(anyhow::Error::msg)?,
        ),
        NetworkRenderer::Auto => unreachable!("pick resolves auto"),
    })
}

/// The files to write: the rendering, the template's ENI files with our interfaces'
/// stanzas commented out, and `/etc/resolv.conf` where nothing else would write it.
fn finish(
    ctx: &Context,
    cfg: &NetConfig,
    renderer: &str,
    out: Rendering,
) -> anyhow::Result<Vec<OutFile>> {
    let sys = ctx.sys;
    let mut files = out.files;
    if !out.neutralise_eni.is_empty() {
        let mut candidates = vec![PathBuf::from("/etc/network/interfaces")];
        let d = Path::new("/etc/network/interfaces.d");
        for n in sys.read_dir(d).unwrap_or_default() {
            candidates.push(d.join(n));
        }
        for p in candidates {
            if files.iter().any(|f| f.path == p) || !sys.exists(&p) {
                continue;
            }
            let Ok(data) = sys.read_file(&p, 1 << 20) else {
                continue;
            };
            let text = String::from_utf8_lossy(&data);
            if let Some(new) = render_eni::neutralise(&text, &out.neutralise_eni) {
                log::info!(
                    "network: commenting out the template's stanzas in {}",
                    p.display()
                );
                files.push(OutFile::new(p, new));
            }
        }
    }
    // Debian's drop-in is read only through a `source` line of /etc/network/interfaces;
    // a template without one gets it (restored with the rest on undo).
    if files
        .iter()
        .any(|f| f.path == Path::new(render_eni::DEBIAN_FILE))
    {
        let main = Path::new(render_eni::WHOLE_FILE);
        let add = |text: &mut String| {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(render_eni::SOURCE_LINE);
        };
        match files.iter_mut().find(|f| f.path == main) {
            Some(f) if !render_eni::reads_dropin(&f.content) => add(&mut f.content),
            Some(_) => {}
            None => {
                let mut text = sys
                    .read_file(main, 1 << 20)
                    .map(|d| String::from_utf8_lossy(&d).into_owned())
                    .unwrap_or_default();
                if !render_eni::reads_dropin(&text) {
                    log::info!(
                        "network: {} does not read {}; adding a source line",
                        main.display(),
                        render_eni::DEBIAN_FILE
                    );
                    add(&mut text);
                    files.push(OutFile::new(main, text));
                }
            }
        }
    }
    let has = |p: &str| sys.exists(Path::new(p));
    let resolver_manages = match renderer {
        "networkd" | "netplan" => {
            enabled(ctx, "systemd-resolved.service") || has("/run/systemd/resolve")
        }
        "eni" => has("/sbin/resolvconf") || has("/usr/sbin/resolvconf"),
        "network-manager" => true,
        _ => false,
    };
    let link = sys
        .lstat(Path::new(RESOLV_CONF))
        .ok()
        .flatten()
        .is_some_and(|i| i.kind == crate::platform::FileKind::Symlink);
    if !resolver_manages && !link {
        if let Some(r) = render_eni::resolv_conf(cfg) {
            files.push(OutFile::new(RESOLV_CONF, r));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, System};

    const SEED: &str = "/run/ci-agent/seed/network-config";
    const V2: &str = "version: 2\nethernets:\n  id0:\n    match: {macaddress: '52:54:00:12:34:56'}\n    set-name: eth0\n    addresses: [10.0.2.20/24]\n    gateway4: 10.0.2.2\n    nameservers: {addresses: [10.0.2.3], search: [lab]}\n";

    /// The seed of most ENI and netplan tests: ens3 with a static address.
    const ENS3_STATIC: &str = "version: 2\nethernets:\n  ens3:\n    addresses: [10.0.2.20/24]\n";

    /// An ifupdown template with `interfaces` as /etc/network/interfaces, NIC ens3, and
    /// the seed [`ENS3_STATIC`].
    fn linux_eni(interfaces: &str) -> Env {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/network/interfaces", interfaces);
        env.sys.put("/sbin/ifup", "");
        env.sys
            .put("/sys/class/net/ens3/address", "52:54:00:12:34:56\n");
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, ENS3_STATIC);
        env
    }

    fn linux_networkd() -> Env {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/systemd/network/50-dhcp.network",
            "[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n",
        );
        env.sys.put(
            "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "",
        );
        env.sys.put("/etc/resolv.conf", "nameserver 192.168.1.1\n");
        env.sys
            .put("/sys/class/net/ens3/address", "52:54:00:12:34:56\n");
        env.sys
            .put("/sys/class/net/lo/address", "00:00:00:00:00:00\n");
        env.seed.files = vec!["network-config".into()];
        env
    }

    #[test]
    fn networkd_render_rerender_and_undo() {
        let mut env = linux_networkd();
        env.sys.put(SEED, V2);
        let w = env.run_ok(&Network);
        assert!(w.is_empty(), "{w:?}");
        let net = env.read("/etc/systemd/network/05-ci-agent-eth0.network");
        assert!(
            net.contains("MACAddress=52:54:00:12:34:56\nType=ether\n"),
            "{net}"
        );
        assert!(net.contains("Address=10.0.2.20/24\n"));
        assert!(net.contains("Gateway=10.0.2.2\n"));
        // The template's catch-all is untouched (our 05- file sorts first).
        assert!(env
            .read("/etc/systemd/network/50-dhcp.network")
            .contains("DHCP=ipv4"));
        // No resolved: resolv.conf is ours.
        assert_eq!(
            env.read("/etc/resolv.conf"),
            "# ci-agent: written from the seed's network-config\nsearch lab\nnameserver 10.0.2.3\n"
        );
        assert_eq!(env.lines(), vec!["ip link set dev ens3 name eth0"]);

        // A new instance with another address replaces the first one's files.
        env.seed.instance_id = "iid-two".into();
        env.sys.put(
            SEED,
            "version: 2\nethernets:\n  ens3:\n    addresses: [10.0.2.21/24]\n",
        );
        env.run_ok(&Network);
        assert!(!env
            .sys
            .exists(Path::new("/etc/systemd/network/05-ci-agent-eth0.network")));
        assert!(!env
            .sys
            .exists(Path::new("/etc/systemd/network/05-ci-agent-eth0.link")));
        assert!(env
            .read("/etc/systemd/network/05-ci-agent-ens3.network")
            .contains("Address=10.0.2.21/24"));
        assert_eq!(
            env.read("/etc/resolv.conf"),
            "nameserver 192.168.1.1\n",
            "restored: no DNS this time"
        );

        // A third instance without network config: back to the template.
        env.seed.instance_id = "iid-three".into();
        env.seed.files.clear();
        assert!(
            Network.wanted(&env.ctx()),
            "the previous rendering must be undone"
        );
        env.run_ok(&Network);
        assert!(!env
            .sys
            .exists(Path::new("/etc/systemd/network/05-ci-agent-ens3.network")));
        assert!(!env.sys.exists(&apply::record_path(&env.config.state_dir)));
        assert!(!Network.wanted(&env.ctx()));
    }

    #[test]
    fn bad_input_fails_with_position_and_writes_nothing() {
        let env = linux_networkd();
        env.sys.put(SEED, "version: 2\nethernets:\n  eth0:\n    addresses: [10.0.2.20/24]\n    gateway4: 10.9.9.9\n");
        let e = env.run_err(&Network);
        assert!(
            e.starts_with("network-config:5:15: eth0: gateway 10.9.9.9 is outside every subnet"),
            "{e}"
        );
        assert!(
            env.sys.read_dir(Path::new("/etc/systemd/network")).unwrap() == vec!["50-dhcp.network"]
        );
        assert_eq!(env.read("/etc/resolv.conf"), "nameserver 192.168.1.1\n");
        assert!(env.lines().is_empty());
    }

    #[test]
    fn disabled_three_ways() {
        let mut env = linux_networkd();
        env.sys.put(SEED, V2);
        env.config.network.disabled = true;
        assert!(!Network.wanted(&env.ctx()));
        env.config.network.disabled = false;
        env.sys.put(
            "/proc/cmdline",
            "root=/dev/vda network-config=disabled quiet\n",
        );
        env.run_ok(&Network);
        assert!(!env
            .sys
            .exists(Path::new("/etc/systemd/network/05-ci-agent-eth0.network")));
        env.sys.put("/proc/cmdline", "root=/dev/vda\n");
        env.sys.put(SEED, "network:\n  config: disabled\n");
        env.run_ok(&Network);
        assert!(!env
            .sys
            .exists(Path::new("/etc/systemd/network/05-ci-agent-eth0.network")));
    }

    #[test]
    fn eni_neutralises_template_dhcp_and_restores_it() {
        let tmpl = "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\nallow-hotplug ens3\niface ens3 inet dhcp\n";
        let env = linux_eni(tmpl);
        env.sys.put(SEED, "version: 2\nethernets:\n  lan:\n    match: {macaddress: '52:54:00:12:34:56'}\n    addresses: [10.0.2.20/24]\n    gateway4: 10.0.2.2\n    nameservers: {addresses: [10.0.2.3]}\n");
        env.run_ok(&Network);
        let ours = env.read(render_eni::DEBIAN_FILE);
        assert!(ours.contains("auto ens3\niface ens3 inet static\n    dns-nameservers 10.0.2.3\n    address 10.0.2.20/24\n    gateway 10.0.2.2\n"), "{ours}");
        assert_eq!(
            env.read("/etc/network/interfaces"),
            "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n#ci-agent# allow-hotplug ens3\n#ci-agent# iface ens3 inet dhcp\n"
        );
        assert!(env
            .read("/etc/resolv.conf")
            .contains("nameserver 10.0.2.3\n"));
        // Undo (what `ci-agent seal` and a later instance do) gives the template back.
        apply::undo(&env.sys, &env.config.state_dir).unwrap();
        assert_eq!(env.read("/etc/network/interfaces"), tmpl);
        assert!(!env.sys.exists(Path::new(render_eni::DEBIAN_FILE)));
        assert!(!env.sys.exists(Path::new("/etc/resolv.conf")));
    }

    #[test]
    fn eni_waits_for_udev_to_name_the_nics() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/network/interfaces",
            "source /etc/network/interfaces.d/*\nallow-hotplug ens2\niface ens2 inet dhcp\n",
        );
        env.sys.put("/bin/udevadm", "");
        // The kernel's name until udev's rename, which `udevadm settle` waits for.
        env.sys
            .put("/sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        let root = env.sys.root().to_path_buf();
        env.sys.on_command_fn(move |cmd| {
            (cmd.argv[..] == ["/bin/udevadm", "settle", "--timeout=30"]).then(|| {
                let net = root.join("sys/class/net");
                std::fs::rename(net.join("eth0"), net.join("ens2")).unwrap();
                CmdOutput {
                    code: Some(0),
                    ..CmdOutput::default()
                }
            })
        });
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, V2.replace("    set-name: eth0\n", ""));
        env.run_ok(&Network);
        assert_eq!(env.lines(), vec!["/bin/udevadm settle --timeout=30"]);
        assert!(env
            .read(render_eni::DEBIAN_FILE)
            .contains("auto ens2\niface ens2 inet static\n"));
        assert!(env
            .read("/etc/network/interfaces")
            .contains("#ci-agent# iface ens2 inet dhcp\n"));
    }

    #[test]
    fn eni_template_dhcp_in_interfaces_d_is_neutralised_and_restored() {
        let main = "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n";
        let dhcp = "auto ens3\niface ens3 inet dhcp\niface ens3 inet6 auto\n";
        let other = "auto ens4\niface ens4 inet dhcp\n";
        let env = linux_eni(main);
        env.sys.put("/etc/network/interfaces.d/ens3", dhcp);
        env.sys.put("/etc/network/interfaces.d/ens4", other);
        env.run_ok(&Network);
        assert_eq!(
            env.read("/etc/network/interfaces.d/ens3"),
            "#ci-agent# auto ens3\n#ci-agent# iface ens3 inet dhcp\n#ci-agent# iface ens3 inet6 auto\n"
        );
        assert_eq!(env.read("/etc/network/interfaces.d/ens4"), other);
        assert_eq!(
            env.read("/etc/network/interfaces"),
            main,
            "it already reads ours"
        );
        assert!(!env.read(render_eni::DEBIAN_FILE).contains("#ci-agent#"));
        apply::undo(&env.sys, &env.config.state_dir).unwrap();
        assert_eq!(env.read("/etc/network/interfaces.d/ens3"), dhcp);
        assert!(!env.sys.exists(Path::new(render_eni::DEBIAN_FILE)));
    }

    #[test]
    fn eni_template_without_a_source_line_gets_one() {
        // An installer's file that does not read interfaces.d: our drop-in would be ignored.
        let tmpl = "auto lo\niface lo inet loopback\nallow-hotplug ens3\niface ens3 inet dhcp";
        let mut env = linux_eni(tmpl);
        env.run_ok(&Network);
        assert_eq!(
            env.read("/etc/network/interfaces"),
            "auto lo\niface lo inet loopback\n#ci-agent# allow-hotplug ens3\n#ci-agent# iface ens3 inet dhcp\n\n# ci-agent: read the seed's network config\nsource /etc/network/interfaces.d/50-ci-agent\n"
        );
        assert!(env
            .read(render_eni::DEBIAN_FILE)
            .contains("iface ens3 inet static\n    address 10.0.2.20/24\n"));
        apply::undo(&env.sys, &env.config.state_dir).unwrap();
        assert_eq!(env.read("/etc/network/interfaces"), tmpl);

        // Nothing of the template's to comment out: the line is still added, and undone.
        let tmpl = "auto lo\niface lo inet loopback\n";
        env.sys.put("/etc/network/interfaces", tmpl);
        env.seed.instance_id = "iid-two".into();
        env.run_ok(&Network);
        assert!(env
            .read("/etc/network/interfaces")
            .ends_with("\nsource /etc/network/interfaces.d/50-ci-agent\n"));
        apply::undo(&env.sys, &env.config.state_dir).unwrap();
        assert_eq!(env.read("/etc/network/interfaces"), tmpl);
    }

    #[test]
    fn meta_data_network_interfaces_when_no_network_config() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/network/interfaces",
            "auto lo\niface lo inet loopback\n",
        );
        env.sys.put("/etc/alpine-release", "3.20.0\n");
        env.seed.meta.raw = serde_json::json!({"network-interfaces": "auto eth0\niface eth0 inet static\n address 10.0.2.30\n netmask 255.255.255.0\n gateway 10.0.2.2\n"});
        env.run_ok(&Network);
        assert_eq!(
            env.read("/etc/network/interfaces"),
            "# ci-agent: written from the seed's network-config\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 10.0.2.30/24\n    gateway 10.0.2.2\n"
        );
    }

    #[test]
    fn freebsd_kernel_options_disable_it() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.on_command(
            &["kenv", "-q", "kernel_options"],
            CmdOutput {
                code: Some(0),
                stdout: b"network-config=disabled\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, V2);
        env.run_ok(&Network);
        assert!(!env.sys.exists(Path::new("/etc/rc.conf.d/network")));
        assert_eq!(env.lines(), vec!["kenv -q kernel_options"]);
    }

    #[test]
    fn freebsd_rc_conf_d() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.on_command(
            &["ifconfig", "-a"],
            CmdOutput {
                code: Some(0),
                stdout: b"vtnet0: flags=8863<UP,BROADCAST> metric 0 mtu 1500\n\tether 52:54:00:12:34:56\nlo0: flags=8049<UP,LOOPBACK> metric 0 mtu 16384\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, V2);
        let w = env.run_ok(&Network);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            env.read("/etc/rc.conf.d/network"),
            "# ci-agent: written from the seed's network-config\nifconfig_vtnet0_name='eth0'\nifconfig_eth0='inet 10.0.2.20/24'\n"
        );
        assert!(env
            .read("/etc/rc.conf.d/routing")
            .contains("defaultrouter='10.0.2.2'\n"));
        assert!(env
            .read("/etc/resolv.conf")
            .contains("nameserver 10.0.2.3\n"));
        // No `ip link` on FreeBSD: rc.d/netif renames.
        assert_eq!(env.lines(), vec!["kenv -q kernel_options", "ifconfig -a"]);
    }

    #[test]
    fn netplan_when_in_use_then_generate_and_undo_on_failure() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/usr/sbin/netplan", "");
        env.sys.put("/etc/netplan/90-default.yaml", "network:\n  version: 2\n  ethernets:\n    all-en:\n      match: {name: en*}\n      dhcp4: true\n");
        env.sys.put(
            "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "",
        );
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, ENS3_STATIC);
        env.run_ok(&Network);
        assert!(env
            .read(network::render_netplan::FILE)
            .contains("\"0ci-ens3\":"));
        assert!(
            env.read("/etc/netplan/90-default.yaml").contains("all-en"),
            "template untouched"
        );
        assert_eq!(env.lines(), vec!["netplan generate"]);

        let env2 = {
            let mut e = Env::new(OsKind::Linux);
            e.sys.put("/usr/sbin/netplan", "");
            e.sys
                .put("/etc/netplan/90-default.yaml", "network: {version: 2}\n");
            e.seed.files = vec!["network-config".into()];
            e.sys.put(SEED, ENS3_STATIC);
            e.sys.on_command(
                &["netplan", "generate"],
                CmdOutput {
                    code: Some(1),
                    ..CmdOutput::default()
                },
            );
            e
        };
        let err = env2.run_err(&Network);
        assert!(err.starts_with("netplan generate failed"), "{err}");
        assert!(!env2.sys.exists(Path::new(network::render_netplan::FILE)));
    }

    #[test]
    fn renderer_follows_the_active_manager() {
        let mut env = Env::new(OsKind::Linux);
        let wants = "/etc/systemd/system/multi-user.target.wants/";
        // NetworkManager installed (unit file, nmcli) but not enabled: not the manager.
        env.sys
            .put("/lib/systemd/system/NetworkManager.service", "[Unit]\n");
        env.sys.put("/usr/bin/nmcli", "");
        env.sys.put("/etc/network/interfaces", "auto lo\n");
        env.sys.put("/sbin/ifup", "");
        assert_eq!(pick(&env.ctx()).unwrap(), NetworkRenderer::Eni);
        env.sys.put(format!("{wants}systemd-networkd.service"), "");
        assert_eq!(pick(&env.ctx()).unwrap(), NetworkRenderer::Networkd);
        // Enabled: it wins over networkd, ifupdown and netplan (whose NetworkManager
        // renderer would hand the config to it anyway).
        env.sys.put(format!("{wants}NetworkManager.service"), "");
        env.sys.put("/usr/sbin/netplan", "");
        env.sys.put(
            "/etc/netplan/01-network-manager-all.yaml",
            "network: {renderer: NetworkManager}\n",
        );
        assert_eq!(pick(&env.ctx()).unwrap(), NetworkRenderer::NetworkManager);
        // The configured renderer beats what the template has.
        env.config.network.renderer = NetworkRenderer::Eni;
        assert_eq!(pick(&env.ctx()).unwrap(), NetworkRenderer::Eni);
        // Nothing at all: an error that says what to set.
        let env = Env::new(OsKind::Linux);
        let e = pick(&env.ctx()).unwrap_err().to_string();
        assert!(e.contains("set network.renderer"), "{e}");
    }

    #[test]
    fn network_manager_when_enabled() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
            "",
        );
        env.sys.put(
            "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "",
        );
        env.seed.files = vec!["network-config".into()];
        env.sys.put(SEED, "version: 1\nconfig:\n  - type: physical\n    name: ens3\n    subnets: [{type: static, address: 10.0.2.20/24, gateway: 10.0.2.2}]\n");
        env.run_ok(&Network);
        let p = "/etc/NetworkManager/system-connections/ci-agent-ens3.nmconnection";
        assert!(env
            .read(p)
            .contains("address1=10.0.2.20/24\ngateway=10.0.2.2\n"));
        assert_eq!(env.mode(p) & 0o777, 0o600);
        assert!(
            !env.sys.exists(Path::new("/etc/resolv.conf")),
            "NetworkManager writes it"
        );
    }
}
