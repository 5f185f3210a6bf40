//! The first-boot run (placeholder until implemented).
pub fn cli(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-agent run: not implemented yet");
    crate::exit::USAGE
}
