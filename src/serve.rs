//! ci-seed serve (placeholder until implemented).
pub fn cli(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-seed serve: not implemented yet");
    crate::exit::USAGE
}
