//! vfat seeds (placeholder until implemented).
