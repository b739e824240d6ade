//! The `ringgate` binary; see `ringgate --help`.
fn main() -> std::process::ExitCode {
    ringgate::cli::run()
}
