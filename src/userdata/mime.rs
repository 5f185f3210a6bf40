//! MIME multipart (placeholder until implemented).
