//! meta-data (placeholder until implemented).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaData {
    pub instance_id: Option<String>,
    pub local_hostname: Option<String>,
    pub public_keys: Vec<String>,
    /// The whole document as JSON (unknown keys kept).
    pub raw: serde_json::Value,
}
