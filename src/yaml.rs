//! The YAML wrapper (placeholder until implemented).
