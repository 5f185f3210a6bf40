//! State directory and status (placeholder until implemented).
pub fn cli_status(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-agent status: not implemented yet");
    crate::exit::USAGE
}
