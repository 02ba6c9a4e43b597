use std::io::Write;
use std::process::ExitCode;

use intradayctl::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_with(std::env::args_os());
    // A person reads stdout and stderr: no SDK log lines (credential-chain and metadata
    // service warnings) unless asked with -v; handler warnings (the local demo runs the
    // handlers in this process) stay.
    intraday_runtime::init_logging_at(match cli.verbose {
        0 => {
            "warn,aws_config=off,aws_smithy_runtime=off,aws_smithy_http_client=off,aws_runtime=off,hyper_util=off"
        }
        1 => "info,aws_config=info,aws_smithy_runtime=info",
        _ => "debug",
    });
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
            ExitCode::from(e.exit_code())
        }
    }
}
