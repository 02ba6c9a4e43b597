//! `intraday-hbase-standin shell -n`: stands in for `hbase shell -n` (see
//! `intraday_testkit::hbase`). Stored rows come from `INTRADAY_HBASE_DATA`, faults from
//! `INTRADAY_HBASE_FAIL`, a scan's pace from `INTRADAY_HBASE_CELLS_PER_SECOND`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use intraday_testkit::hbase::{self, Behaviour, DATA_VAR, FAIL_VAR, Fault, RATE_VAR};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("shell") {
        eprintln!("usage: {} shell [-n] < script", hbase::BINARY);
        return ExitCode::from(2);
    }
    let Some(data) = std::env::var_os(DATA_VAR).map(PathBuf::from) else {
        eprintln!("ERROR: {DATA_VAR} is not set: it names the directory of stored rows");
        return ExitCode::from(1);
    };
    let faults = match Fault::parse_list(&std::env::var(FAIL_VAR).unwrap_or_default()) {
        Ok(faults) => faults,
        Err(e) => {
            eprintln!("ERROR: {FAIL_VAR}: {e}");
            return ExitCode::from(2);
        }
    };
    let cells_per_second = match std::env::var(RATE_VAR) {
        Ok(text) => match text.parse::<u32>() {
            Ok(rate) if rate > 0 => Some(rate),
            _ => {
                eprintln!("ERROR: {RATE_VAR} `{text}` is not a positive number of cells a second");
                return ExitCode::from(2);
            }
        },
        Err(_) => None,
    };
    let behaviour = Behaviour {
        faults,
        cells_per_second,
    };
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    let status = hbase::shell(stdin, &mut out, &mut err, &data, &behaviour);
    let _ = out.flush();
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
