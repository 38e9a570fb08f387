//! The operator: watches Wukongs and converges their children.

/// Options of `wukong run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunOptions {
    /// How many Wukongs are reconciled at the same time.
    #[arg(long, default_value_t = 16, env = "WUKONG_CONCURRENCY")]
    pub concurrency: u16,
}

/// Runs the operator until it is stopped.
pub fn main(_options: RunOptions) -> std::process::ExitCode {
    eprintln!("error: the controller is not built yet");
    std::process::ExitCode::FAILURE
}
