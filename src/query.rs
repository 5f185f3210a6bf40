//! ci-agent query (placeholder until implemented).
pub fn cli(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-agent query: not implemented yet");
    crate::exit::USAGE
}
