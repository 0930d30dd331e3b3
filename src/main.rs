use std::time::Duration;

use clap::Parser;

fn main() -> std::process::ExitCode {
    baler::telemetry::init();
    let cli = baler::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("baler: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(baler::cli::run(cli));
    // The drain is over: a git call still blocked on a hung host must not keep the process
    // alive (a plain runtime drop would wait for it). Its claim expires and is retried.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
