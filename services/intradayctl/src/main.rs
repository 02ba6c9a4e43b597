use std::io::Write;
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
            // A reader that stops early (`| head -1`) closes the pipe: that ends the output
            // quietly, as it does for other command-line tools, rather than in a panic.
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", report.render(format)).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::from(report.exit_code),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::from(report.exit_code)
                }
                Err(e) => {
                    eprintln!("intradayctl: cannot write the result: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("intradayctl: {e}");
            ExitCode::FAILURE
        }
    }
}
