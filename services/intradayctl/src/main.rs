use std::process::ExitCode;

use clap::Parser;
use intradayctl::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
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
