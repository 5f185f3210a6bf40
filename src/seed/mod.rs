//! ci-seed (placeholder until implemented).
pub fn cli_build(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-seed: not implemented yet");
    crate::exit::USAGE
}
pub fn cli_validate(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-seed validate: not implemented yet");
    crate::exit::USAGE
}
pub fn cli_batch(_args: Vec<std::ffi::OsString>) -> u8 {
    eprintln!("ci-seed batch: not implemented yet");
    crate::exit::USAGE
}
