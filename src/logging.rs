//! Logging (placeholder until implemented).
