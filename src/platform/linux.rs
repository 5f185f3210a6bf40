//! Linux policy (placeholder until implemented).
