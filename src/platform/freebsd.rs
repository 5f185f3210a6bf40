//! FreeBSD policy (placeholder until implemented).
