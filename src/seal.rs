//! ci-agent seal (placeholder until implemented).
pub fn cli(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-agent seal: not implemented yet");
    crate::exit::USAGE
}
