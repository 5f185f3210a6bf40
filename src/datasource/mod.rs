//! Seed discovery (placeholder until implemented).
