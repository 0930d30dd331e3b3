use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    baler::telemetry::init();
    let cli = baler::cli::Cli::parse();
    match baler::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
