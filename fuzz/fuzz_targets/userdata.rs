//! Fuzz user-data processing over arbitrary bytes: classification, gzip (bounded), MIME
//! splitting and decoding, cloud-config parsing and merging, vendor-data forms and the
//! validator. Any panic, hang or oversized allocation is a bug.
#![no_main]

use ci_agent::formats::userdata::{self, mime, Seed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small budgets so a run explores shapes, not big inputs.
    let limits = userdata::Limits {
        max_gunzip_bytes: 1 << 20,
        max_parts: 64,
        ..userdata::Limits::default()
    };
    // The first byte picks which file the rest goes to.
    let (sel, rest) = match data.split_first() {
        Some((s, r)) => (*s, r),
        None => (0, data),
    };
    let name = match sel % 3 {
        0 => "user-data",
        1 => "vendor-data",
        _ => "meta-data",
    };
    let seed = Seed {
        source: "fuzz".into(),
        files: [(name.to_string(), rest.to_vec())].into_iter().collect(),
        ..Seed::default()
    };
    if let Ok(d) = userdata::parse_seed_with(&seed, &limits) {
        // The merged JSON must convert back.
        let _ = ci_agent::formats::userdata::CloudConfig::from_value(&d.cloud_config_json);
    }
    let _ = userdata::validate_user_data("user-data", rest);
    let _ = userdata::validate_meta_data("meta-data", rest);
    if mime::looks_like_mime(rest) {
        let _ = mime::split(rest, 64);
    }
});
