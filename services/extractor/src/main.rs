/// jemalloc rather than glibc's allocator. With glibc, memory freed by one pipeline thread
/// (a page buffer, a row group's records) went back to the kernel and was faulted in again,
/// and each return interrupted the other cores to flush their TLBs: two workers on one
/// collection spent about a fifth more CPU than one. jemalloc is built with one arena for
/// every thread and keeps the pages it frees (`.cargo/config.toml`): the pipeline's memory is
/// bounded by its queues and row groups, so its peak is all it ever holds, and two workers
/// then spend no more CPU than one (services/extractor/BENCH.md).
///
/// jemalloc also takes C's `malloc` in this binary (the workspace's `tikv-jemallocator`
/// feature `unprefixed_malloc_on_supported_platforms`), so zstd's compression workspaces,
/// allocated by its C library for each column writer, reuse kept pages too. With glibc's
/// allocator for them, a row group's three workspaces went back to the kernel when it closed
/// and were faulted in for the next: on a 1 GB scan of 1 KB documents, 28,000 page faults
/// where the whole run now takes 5,550. tikv-jemalloc-sys keeps the prefix on Android,
/// DragonFly and Apple targets only (its `NO_UNPREFIXED_MALLOC_TARGETS`, and its README's
/// `unprefixed_malloc_on_supported_platforms`), so both Linux builds, x86_64 and aarch64,
/// take it; `nm -D` on the built binary shows `malloc` defined in it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    intraday_extractor::cli::main()
}
