//! Recording fake System (placeholder until implemented).
