//! Fuzz the YAML wrapper with text: the located tree and its JSON view, typed reads
//! (the agent config's path), cloud-config conversion and meta-data. Any panic, hang or
//! budget escape is a bug.
#![no_main]

use ci_agent::formats::userdata::{CloudConfig, MetaData};
use ci_agent::formats::yaml;
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Typed {
    name: Option<String>,
    flag: Option<bool>,
    n: Option<u32>,
    list: Option<Vec<String>>,
    map: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    e: Option<Kind>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
enum Kind {
    A,
    B(u8),
    C { x: String },
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = yaml::Limits {
        max_nodes: 20_000,
        max_events: 50_000,
        max_alias_replay_events: 20_000,
        ..yaml::Limits::default()
    };
    if let Ok(node) = yaml::parse_node_with(text, "fuzz", &limits) {
        let json = node.to_json();
        let mut warnings = Vec::new();
        let _ = CloudConfig::from_node(&node, "fuzz", &mut warnings);
        let _ = CloudConfig::from_value(&json);
        let _ = yaml::from_node::<Typed>(&node, "fuzz");
    }
    let _ = yaml::from_str_with::<serde_json::Value>(text, "fuzz", &limits);
    let _ = MetaData::parse_with("meta-data", data, &limits);
});
