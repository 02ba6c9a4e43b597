/// jemalloc rather than glibc's allocator. With glibc, memory freed by one pipeline thread
/// (a page buffer, a row group's records) went back to the kernel and was faulted in again,
/// and each return interrupted the other cores to flush their TLBs: two workers on one
/// collection spent about a fifth more CPU than one. jemalloc keeps freed pages a short
/// while (`.cargo/config.toml` sets how long) and scaled 1.45x to 1.7x on two cores, for
/// 40-60 MiB more peak memory (services/extractor/BENCH.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    intraday_extractor::cli::main()
}
