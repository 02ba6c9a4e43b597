fn main() -> std::process::ExitCode {
    intraday_extractor::cli::main()
}
