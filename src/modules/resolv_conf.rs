//! Key: `resolv_conf` (`nameservers`, `searchdomains`, `domain`, `sortlist`, `options`), `manage_resolv_conf`. cloud-init: `cc_resolv_conf`.
//!
//! Only with `manage_resolv_conf: true`, as in cloud-init (without it, a `resolv_conf` key
//! is a warning). Writes `/etc/resolv.conf` on both OSes: `nameserver` lines (the C
//! library reads the first three: more is a warning), `search`, `domain`, `sortlist`, and
//! `options` (`rotate: true` → `options rotate`, `timeout: 1` → `options timeout:1`).
//!
//! When `/etc/resolv.conf` is a symlink, a resolver manager owns it (systemd-resolved's
//! stub, resolvconf): the file is left alone and a warning names the link target — our
//! content would be overwritten anyway. Early (before DHCP), once per instance.

use std::path::Path;

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::value::KeyVal;
use crate::formats::yaml::NodeValue;

pub struct ResolvConf;

const PATH: &str = "/etc/resolv.conf";
const KNOWN: &[&str] = &[
    "nameservers",
    "searchdomains",
    "domain",
    "sortlist",
    "options",
];

fn words(v: Option<KeyVal>) -> anyhow::Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(l) => match l.node.value {
            NodeValue::Seq(_) => Ok(l
                .items()?
                .iter()
                .map(KeyVal::word)
                .collect::<Result<_, _>>()?),
            _ => Ok(vec![l.word()?]),
        },
    }
}

impl Module for ResolvConf {
    fn name(&self) -> &'static str {
        "resolv_conf"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("resolv_conf").is_some() || ctx.key("manage_resolv_conf").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let manage = match ctx.key("manage_resolv_conf") {
            Some(m) => m.bool()?,
            None => false,
        };
        let Some(v) = ctx.key("resolv_conf") else {
            if manage {
                ctx.warn("manage_resolv_conf is true but there is no resolv_conf");
            }
            return Ok(());
        };
        if !manage {
            ctx.warn("resolv_conf is ignored without manage_resolv_conf: true (as in cloud-init)");
            return Ok(());
        }
        v.mapping()?;
        for w in v.unknown_keys(KNOWN) {
            ctx.warn(w);
        }
        let ns = words(v.get("nameservers"))?;
        let search = words(v.get("searchdomains"))?;
        let sortlist = words(v.get("sortlist"))?;
        let domain = match v.get("domain") {
            Some(d) => Some(d.word()?),
            None => None,
        };
        let mut options = Vec::new();
        if let Some(o) = v.get("options") {
            for (k, val) in o.entries()? {
                if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(val.err("invalid option name").into());
                }
                match val.node.as_bool() {
                    Some(true) => options.push(k),
                    Some(false) => {}
                    None => options.push(format!("{k}:{}", val.word()?)),
                }
            }
        }
        if ns.len() > 3 {
            ctx.warn(format!(
                "resolv_conf.nameservers: {} given, the resolver uses the first 3",
                ns.len()
            ));
        }
        if let Ok(Some(st)) = ctx.sys.lstat(Path::new(PATH)) {
            if st.kind == crate::platform::FileKind::Symlink {
                let target = ctx
                    .sys
                    .read_link(Path::new(PATH))
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                ctx.warn(format!(
                    "{PATH} is a symlink to {target}: a resolver manager owns it, left alone"
                ));
                return Ok(());
            }
        }
        let mut body = String::from("# Written by ci-agent (cloud-config resolv_conf).\n");
        for n in &ns {
            body.push_str(&format!("nameserver {n}\n"));
        }
        if !search.is_empty() {
            body.push_str(&format!("search {}\n", search.join(" ")));
        }
        if let Some(d) = domain {
            body.push_str(&format!("domain {d}\n"));
        }
        if !sortlist.is_empty() {
            body.push_str(&format!("sortlist {}\n", sortlist.join(" ")));
        }
        if !options.is_empty() {
            body.push_str(&format!("options {}\n", options.join(" ")));
        }
        ctx.write_config(PATH, body.as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::{OsKind, System};

    const SEED: &str = "manage_resolv_conf: true\nresolv_conf:\n  nameservers: [10.0.0.1, 10.0.0.2]\n  searchdomains: [a.example, b.example]\n  domain: example\n  sortlist: [10.0.0.0/255.0.0.0]\n  options: {rotate: true, timeout: 1, debug: false}\n";

    #[test]
    fn writes_resolv_conf_on_both_oses() {
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let mut env = Env::new(os);
            env.yaml(SEED);
            assert!(env.run_ok(&ResolvConf).is_empty());
            assert_eq!(
                env.read(PATH),
                "# Written by ci-agent (cloud-config resolv_conf).\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch a.example b.example\ndomain example\nsortlist 10.0.0.0/255.0.0.0\noptions rotate timeout:1\n"
            );
        }
    }

    #[test]
    fn a_managed_symlink_or_no_manage_flag_leaves_it_alone() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/run/systemd/resolve/stub-resolv.conf", "x");
        env.sys
            .symlink(
                Path::new("../run/systemd/resolve/stub-resolv.conf"),
                Path::new(PATH),
            )
            .unwrap();
        env.yaml(SEED);
        let w = env.run_ok(&ResolvConf);
        assert!(w[0].contains("resolver manager owns it"), "{w:?}");
        env.yaml("resolv_conf: {nameservers: [1.1.1.1]}\n");
        let w = env.run_ok(&ResolvConf);
        assert!(w[0].contains("without manage_resolv_conf"), "{w:?}");
        env.yaml("manage_resolv_conf: true\nresolv_conf: {nameservers: [\"1.1.1.1\\nnameserver 6.6.6.6\"]}\n");
        assert!(env.run_err(&ResolvConf).contains("control characters"));
    }
}
