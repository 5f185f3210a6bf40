//! Parser, validation and renderer tests. The expected texts were checked by hand against
//! the facts in the project's compat notes (cloud-init's and nuageinit's output, networkd,
//! ifupdown and rc.conf semantics).

use super::*;

fn cfg(text: &str) -> (NetConfig, Warnings) {
    let mut w = Vec::new();
    match parse("network-config", text.as_bytes(), &mut w) {
        Ok(Parsed::Config(c)) => (c, w),
        other => panic!("{other:?}"),
    }
}

fn err(text: &str) -> String {
    let mut w = Vec::new();
    parse("network-config", text.as_bytes(), &mut w)
        .unwrap_err()
        .to_string()
}

fn file<'a>(r: &'a Rendering, path: &str) -> &'a str {
    &r.files
        .iter()
        .find(|f| f.path == Path::new(path))
        .unwrap_or_else(|| panic!("{path} not rendered: {:?}", r.files))
        .content
}

use std::path::Path;

/// vm-bhyve's `vm create -C -n "ip=…;gateway=…;nameservers=…"` file, byte for byte.
const BHYVE: &str = "version: 2
ethernets:
  id0:
    set-name: eth0
    match:
      macaddress: \"58:9c:fc:0a:bb:cc\"
    addresses:
      - 10.0.0.2/24
    gateway4: 10.0.0.1
    nameservers:
      search: []
      addresses: [1.1.1.1, 9.9.9.9]
";

const NICS: &[(&str, &str)] = &[
    ("vtnet0", "58:9c:fc:0a:bb:cc"),
    ("vtnet1", "58:9c:fc:0a:bb:dd"),
];

fn nics() -> Vec<(String, String)> {
    NICS.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn bhyve_v2_model() {
    let (c, w) = cfg(BHYVE);
    assert!(w.is_empty(), "{w:?}");
    let i = &c.ifaces[0];
    assert_eq!(i.name, "eth0");
    assert_eq!(i.id, "id0");
    assert_eq!(i.matcher.mac.as_deref(), Some("58:9c:fc:0a:bb:cc"));
    assert_eq!(i.addresses[0].to_string(), "10.0.0.2/24");
    assert_eq!(i.gateway(false).unwrap().to_string(), "10.0.0.1");
    assert_eq!(i.dns.addresses.len(), 2);
    // Wrapped under `network:` is the same.
    let wrapped = format!(
        "network:\n{}",
        BHYVE
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    assert_eq!(
        render_networkd::render(&cfg(&wrapped).0),
        render_networkd::render(&c)
    );
}

#[test]
fn networkd_bhyve() {
    let (c, _) = cfg(BHYVE);
    let r = render_networkd::render(&c);
    assert_eq!(
        file(&r, "/etc/systemd/network/05-ci-agent-eth0.network"),
        "# ci-agent: written from the seed's network-config
[Match]
MACAddress=58:9c:fc:0a:bb:cc
Type=ether

[Network]
Address=10.0.0.2/24
DNS=1.1.1.1
DNS=9.9.9.9

[Route]
Gateway=10.0.0.1
"
    );
    assert_eq!(
        file(&r, "/etc/systemd/network/05-ci-agent-eth0.link"),
        "# ci-agent: written from the seed's network-config\n[Match]\nMACAddress=58:9c:fc:0a:bb:cc\n\n[Link]\nName=eth0\n"
    );
    assert_eq!(
        r.renames,
        vec![("58:9c:fc:0a:bb:cc".to_string(), "eth0".to_string())]
    );
}

#[test]
fn defaults_and_default_routes() {
    let (c, _) = cfg("version: 2
ethernets:
  ens3:
    addresses: [192.0.2.9, '2001:db8::9']
    routes:
      - to: default
        via: 192.0.2.1
      - to: 198.51.100.0/24
        via: 192.0.2.254
        metric: 50
      - to: default
        via: '2001:db8::1'
    mtu: 1400
    dhcp6: true
");
    let i = &c.ifaces[0];
    assert_eq!(i.addresses[0].to_string(), "192.0.2.9/24");
    assert_eq!(i.addresses[1].to_string(), "2001:db8::9/64");
    assert_eq!(i.gateway(true).unwrap().to_string(), "2001:db8::1");
    let r = render_networkd::render(&c);
    assert_eq!(
        file(&r, "/etc/systemd/network/05-ci-agent-ens3.network"),
        "# ci-agent: written from the seed's network-config
[Match]
Name=ens3

[Link]
MTUBytes=1400

[Network]
DHCP=ipv6
Address=192.0.2.9/24
Address=2001:db8::9/64

[Route]
Gateway=192.0.2.1

[Route]
Destination=198.51.100.0/24
Gateway=192.0.2.254
Metric=50

[Route]
Gateway=2001:db8::1
"
    );
    let e = render_eni::render(&c, &nics(), false).unwrap();
    assert_eq!(
        file(&e, render_eni::DEBIAN_FILE),
        "# ci-agent: written from the seed's network-config

auto ens3
iface ens3 inet static
    mtu 1400
    address 192.0.2.9/24
    gateway 192.0.2.1
    post-up ip route add 198.51.100.0/24 via 192.0.2.254 metric 50 dev ens3 || true
    pre-down ip route del 198.51.100.0/24 via 192.0.2.254 metric 50 dev ens3 || true
iface ens3 inet6 static
    address 2001:db8::9/64
    gateway 2001:db8::1
iface ens3 inet6 dhcp
"
    );
}

#[test]
fn errors_name_position_and_expectation() {
    let base = "version: 2\nethernets:\n  eth0:\n    addresses: [";
    assert_eq!(
        err(&format!("{base}10.0.0.300/24]\n")),
        "network-config:4:17: ethernets.eth0.addresses: \"10.0.0.300\" is not an IPv4 or IPv6 address"
    );
    assert_eq!(
        err(&format!("{base}10.0.0.3/33]\n")),
        "network-config:4:17: ethernets.eth0.addresses: prefix \"33\" out of range (expected 0 to 32)"
    );
    let e = err(
        "version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.3/24]\n    gateway4: 10.0.1.1\n",
    );
    assert!(
        e.starts_with("network-config:5:15: eth0: gateway 10.0.1.1 is outside every subnet"),
        "{e}"
    );
    let (c, _) = cfg("version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.3/24]\n    routes: [{to: default, via: 10.0.1.1, on-link: true}]\n");
    assert!(c.ifaces[0].routes[0].on_link);
    for (name, why) in [
        ("a/b", "'/' is not allowed"),
        ("\"'a'\"", "'\\'' is not allowed"),
        ("\"a\\nb\"", "'\\n' is not allowed"),
        ("abcdefghijklmnop", "longer than 15 bytes"),
    ] {
        let e = err(&format!(
            "version: 2\nethernets:\n  {name}:\n    dhcp4: true\n"
        ));
        assert!(e.starts_with("network-config:3:3: "), "{e}");
        assert!(e.contains(why), "{name}: {e}");
    }
    let e = err(
        "version: 2\nethernets:\n  id0:\n    match: {macaddress: aa}\n    set-name: \"x\\ny\"\n",
    );
    assert!(e.contains("invalid interface name"), "{e}");
    assert!(err("version: 3\n").contains("version: expected 1 or 2"));
    assert!(err("ethernets: {}\n").contains("no `version`"));
    assert!(err("version: 2\nethernets:\n  eth0:\n    mtu: lots\n")
        .starts_with("network-config:4:10: "));
}

#[test]
fn unknown_keys_are_warnings_with_positions() {
    let (_, w) =
        cfg("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n    wakeonlan: true\nwifis: {}\n");
    assert_eq!(
        w,
        vec![
            "network-config:5:5: ethernets.eth0.wakeonlan: not supported by ci-agent; ignored",
            "network-config:6:1: wifis: not supported by ci-agent; ignored",
        ]
    );
}

#[test]
fn disabled() {
    let mut w = Vec::new();
    assert_eq!(
        parse("n", b"network: {config: disabled}\n", &mut w).unwrap(),
        Parsed::Disabled
    );
    assert_eq!(
        parse("n", b"config: disabled\n", &mut w).unwrap(),
        Parsed::Disabled
    );
}

const V1: &str = "version: 1
config:
  - type: physical
    name: eth0
    mac_address: '52:54:00:12:34:56'
    subnets:
      - type: static
        address: 192.0.2.20
        netmask: 255.255.255.0
        gateway: 192.0.2.1
        dns_nameservers: [192.0.2.53]
      - type: static6
        address: 2001:db8::20/64
  - type: physical
    name: eth1
    subnets: [{type: dhcp}]
  - type: nameserver
    address: [1.1.1.1]
    search: [example.com]
  - type: route
    destination: 198.51.100.0/24
    gateway: 192.0.2.254
";

#[test]
fn v1_model() {
    let (c, w) = cfg(V1);
    assert!(w.is_empty(), "{w:?}");
    let e = &c.ifaces[0];
    assert_eq!(e.set_name.as_deref(), Some("eth0"));
    assert_eq!(e.addresses.len(), 2);
    assert_eq!(e.routes.len(), 2, "subnet gateway + global route");
    assert!(c.ifaces[1].dhcp4);
    assert_eq!(c.dns.addresses[0].to_string(), "1.1.1.1");
    assert_eq!(c.dns.search, vec!["example.com"]);
    let e = err("version: 1\nconfig:\n  - type: route\n    destination: 10.1.0.0/16\n    gateway: 10.9.9.9\n");
    assert!(
        e.starts_with("network-config:3:5: route: the gateway is outside"),
        "{e}"
    );
}

#[test]
fn freebsd_like_nuageinit() {
    let (c, _) = cfg("version: 2
ethernets:
  vtnet0:
    addresses: [192.0.2.2/24, '2001:db8::2/64']
    gateway4: 192.0.2.1
    gateway6: '2001:db8::1'
    nameservers: {addresses: [192.0.2.53], search: [lab]}
  vtnet1:
    dhcp4: true
");
    let r = render_freebsd::render(&c, &nics()).unwrap();
    assert_eq!(
        file(&r, render_freebsd::NETWORK),
        "# ci-agent: written from the seed's network-config
ifconfig_vtnet0='inet 192.0.2.2/24'
ifconfig_vtnet0_ipv6='inet6 2001:db8::2/64'
ifconfig_vtnet1='DHCP'
"
    );
    assert_eq!(
        file(&r, render_freebsd::ROUTING),
        "# ci-agent: written from the seed's network-config
defaultrouter='192.0.2.1'
ipv6_defaultrouter='2001:db8::1'
"
    );
    assert_eq!(
        file(&r, render_freebsd::RESOLVCONF_CONF),
        "# ci-agent: written from the seed's network-config\nname_servers='192.0.2.53'\nsearch_domains='lab'\n"
    );
    // set-name with a MAC: the old name is renamed by rc.d/netif, the config uses the new one.
    let (c, _) = cfg(BHYVE);
    let r = render_freebsd::render(&c, &nics()).unwrap();
    assert_eq!(
        file(&r, render_freebsd::NETWORK),
        "# ci-agent: written from the seed's network-config
ifconfig_vtnet0_name='eth0'
ifconfig_eth0='inet 10.0.0.2/24'
"
    );
    assert_eq!(render_freebsd::quote("a'b"), "'a'\\''b'");
    assert_eq!(render_freebsd::var("vtnet0.100"), "vtnet0_100");
}

#[test]
fn freebsd_link_local_gateway_names_its_interface() {
    // Common for IPv6 (the router's fe80:: address): rc.conf(5) and route(8) take it
    // only with its scope, `fe80::1%vtnet0`.
    let (c, w) = cfg("version: 2
ethernets:
  vtnet0:
    addresses: ['2001:db8::2/64']
    gateway6: 'fe80::1'
    routes:
      - {to: '2001:db8:1::/48', via: 'fe80::2'}
");
    assert!(w.is_empty(), "{w:?}");
    let r = render_freebsd::render(&c, &nics()).unwrap();
    assert_eq!(
        file(&r, render_freebsd::ROUTING),
        "# ci-agent: written from the seed's network-config
ipv6_defaultrouter='fe80::1%vtnet0'
ipv6_static_routes='ciagent0'
ipv6_route_ciagent0='-net 2001:db8:1::/48 fe80::2%vtnet0'
"
    );
}

#[test]
fn freebsd_routes_aliases_vlans_warnings() {
    let (c, w) = cfg("version: 2
ethernets:
  vtnet0:
    addresses: [192.0.2.2/24, 192.0.2.3/24]
    routes:
      - {to: 198.51.100.0/24, via: 192.0.2.254, metric: 5}
    dhcp6: true
  vtnet1: {}
vlans:
  vlan10:
    id: 10
    link: vtnet0
    addresses: [10.10.0.2/24]
bonds:
  bond0:
    interfaces: [vtnet1]
");
    assert!(w.is_empty(), "{w:?}");
    let r = render_freebsd::render(&c, &nics()).unwrap();
    assert_eq!(
        file(&r, render_freebsd::NETWORK),
        "# ci-agent: written from the seed's network-config
ifconfig_vtnet0='inet 192.0.2.2/24'
ifconfig_vtnet0_alias0='inet 192.0.2.3/24'
ifconfig_vtnet0_ipv6='inet6 accept_rtadv'
vlans_vtnet0='vlan10'
create_args_vlan10='vlan 10'
ifconfig_vlan10='inet 10.10.0.2/24'
"
    );
    assert_eq!(
        file(&r, render_freebsd::ROUTING),
        "# ci-agent: written from the seed's network-config
static_routes='ciagent0'
route_ciagent0='-net 198.51.100.0/24 192.0.2.254'
"
    );
    assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
}

#[test]
fn eni_bonds_vlans_and_neutralise() {
    let (c, _) = cfg("version: 2
ethernets:
  eth1: {}
  eth2: {}
bonds:
  bond0:
    interfaces: [eth1, eth2]
    parameters: {mode: active-backup}
    dhcp4: true
vlans:
  bond0.5:
    id: 5
    link: bond0
    addresses: [10.5.0.2/24]
");
    let r = render_eni::render(&c, &nics(), false).unwrap();
    assert_eq!(
        file(&r, render_eni::DEBIAN_FILE),
        "# ci-agent: written from the seed's network-config

auto eth1
iface eth1 inet manual
    bond-master bond0

auto eth2
iface eth2 inet manual
    bond-master bond0

auto bond0
iface bond0 inet dhcp
    bond-slaves eth1 eth2
    bond-mode active-backup

auto bond0.5
iface bond0.5 inet static
    vlan-raw-device bond0
    vlan-id 5
    address 10.5.0.2/24
"
    );
    let tmpl = "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\nallow-hotplug eth1\niface eth1 inet dhcp\n    hostname x\n\nauto eth9\niface eth9 inet dhcp\n";
    let n = render_eni::neutralise(tmpl, &["eth1".to_string()]).unwrap();
    assert_eq!(
        n,
        "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\n#ci-agent# allow-hotplug eth1\n#ci-agent# iface eth1 inet dhcp\n#ci-agent#     hostname x\n\nauto eth9\niface eth9 inet dhcp\n"
    );
    assert!(render_eni::neutralise(tmpl, &["eth7".to_string()]).is_none());
    assert_eq!(
        render_eni::neutralise(
            "auto lo eth0 eth1\niface eth0 inet dhcp\n",
            &["eth0".to_string()]
        )
        .unwrap(),
        "#ci-agent# auto lo eth0 eth1\nauto lo eth1\n#ci-agent# iface eth0 inet dhcp\n"
    );
}

#[test]
fn eni_drop_in_is_read_only_through_a_source_line() {
    for yes in [
        "source /etc/network/interfaces.d/*\n",
        "auto lo\nsource interfaces.d/*\n",
        "source-directory /etc/network/interfaces.d\n",
        "source-directory interfaces.d/\n",
        "source /etc/network/interfaces.d/50-ci-agent\n",
        "source /etc/network/interfaces.d/[0-9]*\n",
    ] {
        assert!(render_eni::reads_dropin(yes), "{yes:?}");
    }
    for no in [
        "",
        "auto lo\niface lo inet loopback\n",
        "# source /etc/network/interfaces.d/*\n",
        "source /etc/network/interfaces.d/*.cfg\n",
        "source-directory /etc/network/other.d\n",
        "source\n",
    ] {
        assert!(!render_eni::reads_dropin(no), "{no:?}");
    }
}

#[test]
fn nm_keyfile() {
    let (c, _) = cfg(BHYVE);
    let r = render_nm::render(&c);
    let f = &r.files[0];
    assert_eq!(f.mode, 0o600);
    assert_eq!(
        f.path,
        Path::new("/etc/NetworkManager/system-connections/ci-agent-eth0.nmconnection")
    );
    let uuid = f
        .content
        .lines()
        .find_map(|l| l.strip_prefix("uuid="))
        .unwrap();
    assert_eq!(
        f.content,
        format!(
            "# ci-agent: written from the seed's network-config
[connection]
id=ci-agent-eth0
uuid={uuid}
type=ethernet
autoconnect-priority=100
interface-name=eth0

[ethernet]
mac-address=58:9C:FC:0A:BB:CC

[ipv4]
method=manual
address1=10.0.0.2/24
gateway=10.0.0.1
dns=1.1.1.1;9.9.9.9;

[ipv6]
method=ignore
"
        )
    );
    assert!(uuid::Uuid::parse_str(uuid).is_ok());
}

#[test]
fn matched_entries_resolve_to_current_nics() {
    let (c, _) =
        cfg("version: 2\nethernets:\n  lan:\n    match: {name: 'vtnet*'}\n    dhcp4: true\n");
    let r = render_networkd::render(&c);
    assert!(
        file(&r, "/etc/systemd/network/05-ci-agent-lan.network").contains("[Match]\nName=vtnet*\n")
    );
    let e = render_eni::render(&c, &nics(), false).unwrap();
    assert!(file(&e, render_eni::DEBIAN_FILE).contains("iface vtnet0 inet dhcp"));
    let (c, _) = cfg("version: 2\nethernets:\n  lan:\n    match: {macaddress: '00:00:00:00:00:01'}\n    dhcp4: true\n");
    let e = render_eni::render(&c, &nics(), false).unwrap_err();
    assert_eq!(
        e,
        "lan: no interface on this machine matches macaddress 00:00:00:00:00:01"
    );
}

#[test]
fn netplan_ids_sort_before_the_templates_catch_all() {
    let (c, _) = cfg("version: 2
ethernets:
  eth0:
    addresses: [10.0.0.7]
    routes: [{to: default, via: 10.0.0.1, metric: 5}]
    nameservers: {addresses: [10.0.0.53], search: [lab]}
  lan:
    match: {macaddress: '52:54:00:00:00:01'}
    set-name: lan0
    dhcp4: true
vlans:
  vlan7:
    id: 7
    link: lan
    addresses: [10.7.0.2/24]
");
    let r = render_netplan::render(&c);
    assert_eq!(r.files[0].mode, 0o600);
    assert_eq!(
        file(&r, render_netplan::FILE),
        "# ci-agent: written from the seed's network-config
network:
  version: 2
  ethernets:
    \"0ci-eth0\":
      match:
        name: \"eth0\"
      addresses: [\"10.0.0.7/24\"]
      routes:
        - to: \"default\"
          via: \"10.0.0.1\"
          metric: 5
      nameservers:
        addresses: [\"10.0.0.53\"]
        search: [\"lab\"]
    \"0ci-lan0\":
      match:
        macaddress: \"52:54:00:00:00:01\"
      set-name: \"lan0\"
      dhcp4: true
  vlans:
    \"vlan7\":
      id: 7
      link: \"0ci-lan0\"
      addresses: [\"10.7.0.2/24\"]
"
    );
    // `0ci-…` sorts before any letter: netplan's 10-netplan-0ci-eth0.network comes before
    // a template's 10-netplan-all-en.network.
    assert!("0ci-eth0" < "all-en");
}

/// Seed input never panics the parser or a renderer: every file of the differential
/// corpus, mutated many times (bytes flipped, dropped, duplicated, hostile words spliced
/// in), goes through `parse` and all five renderers.
#[test]
fn mutated_inputs_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudinit/netcfg");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    corpus.push(BHYVE.as_bytes().to_vec());
    corpus.push(V1.as_bytes().to_vec());
    let splice: &[&[u8]] = &[
        b"/0",
        b"/129",
        b"'\n",
        b"\"",
        b": [",
        b"{}",
        b"- ",
        b"::",
        b"255.255.255.255",
        b"0.0.0.0/0",
        b"default",
        b"*?[!",
        b"\xff",
        b"aaaaaaaaaaaaaaaaaaaa",
        b"\n  ",
        b"99999999999999999999",
        b"-1",
        b"on-link: true",
        b"set-name: x/y",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let nics = nics();
    let mut parsed = 0;
    for round in 0..3000 {
        let mut d = corpus[round % corpus.len()].clone();
        for _ in 0..1 + rand() % 4 {
            if d.is_empty() {
                break;
            }
            let at = (rand() as usize) % d.len();
            match rand() % 4 {
                0 => d[at] = rand() as u8,
                1 => {
                    d.remove(at);
                }
                2 => {
                    let w = splice[(rand() as usize) % splice.len()];
                    d.splice(at..at, w.iter().copied());
                }
                _ => {
                    let end = (at + 1 + (rand() as usize) % 16).min(d.len());
                    let chunk = d[at..end].to_vec();
                    d.splice(at..at, chunk);
                }
            }
        }
        let mut w = Vec::new();
        if let Ok(Parsed::Config(c)) = parse("n", &d, &mut w) {
            parsed += 1;
            let _ = render_networkd::render(&c);
            let _ = render_netplan::render(&c);
            let _ = render_nm::render(&c);
            let _ = render_eni::render(&c, &nics, false);
            if let Ok(r) = render_freebsd::render(&c, &nics) {
                // Nothing from the seed can start an rc.conf line of its own.
                for f in &r.files {
                    for line in f.content.lines() {
                        let ok = line.starts_with("# ci-agent")
                            || line.split_once("='").is_some_and(|(k, v)| {
                                k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                                    && v.ends_with('\'')
                                    && !v[..v.len() - 1].contains('\'')
                            });
                        assert!(ok, "{}: {line:?}", f.path.display());
                    }
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(&d) {
            let _ = eni::parse("md", text, &mut w);
        }
    }
    assert!(
        parsed > 100,
        "only {parsed} mutants parsed: the mutations are too coarse"
    );
}
