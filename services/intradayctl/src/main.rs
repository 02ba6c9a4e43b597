use std::process::ExitCode;

use clap::Parser;
use intradayctl::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    // Handler logs (the local demo runs them in this process) at warn unless RUST_LOG says.
    intraday_runtime::init_logging_at("warn");
    let cli = Cli::parse();
    let format = cli.output;
    match intradayctl::run(cli).await {
        Ok(report) => {
            println!("{}", report.render(format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("intradayctl: {e}");
            ExitCode::FAILURE
        }
    }
}
