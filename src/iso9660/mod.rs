//! ISO9660 codec (placeholder until implemented).
