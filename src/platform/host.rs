//! Real System (placeholder until implemented).
