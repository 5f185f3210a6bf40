//! The one YAML wrapper (placeholder signatures until implemented).

use crate::userdata::SeedError;

/// Parse a YAML (or JSON) document into a plain JSON value, within budgets.
pub fn parse_value(_text: &str, file: &str) -> Result<serde_json::Value, SeedError> {
    Err(SeedError {
        file: file.into(),
        line: None,
        column: None,
        message: "YAML parsing not implemented yet".into(),
    })
}

/// Parse a YAML document into a typed value, within budgets; errors carry line/column.
pub fn from_str<T: serde::de::DeserializeOwned>(_text: &str, file: &str) -> Result<T, SeedError> {
    Err(SeedError {
        file: file.into(),
        line: None,
        column: None,
        message: "YAML parsing not implemented yet".into(),
    })
}
