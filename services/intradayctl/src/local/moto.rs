//! Starting moto server on a free loopback port for the local pipeline.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::CtlError;

/// A moto server this process started; it stops when this is dropped.
pub struct Moto {
    pub endpoint: String,
    _child: Child,
}

/// Starts moto server. With `free_requests`, it lets that many requests through and then
/// checks every request against IAM (`INITIAL_NO_AUTH_ACTION_COUNT`).
pub async fn start(free_requests: Option<u32>) -> Result<Moto, CtlError> {
    // The pinned moto first (ci/setup.sh installs it), whatever else is on PATH.
    let binary = intraday_testkit::tools::moto_server().ok_or_else(|| {
        CtlError::Other("moto_server was not found: run ci/setup.sh (it installs moto server), or pass --endpoint-url of one you started".into())
    })?;
    if let Some(warning) = intraday_testkit::tools::moto_warning(&binary) {
        eprintln!("intradayctl: {warning}");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CtlError::Other(format!("no free loopback port: {e}")))?;
    let mut command = Command::new(&binary);
    if let Some(free) = free_requests {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string());
    }
    let child = command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CtlError::Other(format!("cannot start {}: {e}", binary.display())))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(CtlError::Other(format!(
                "moto server did not answer on port {port} within 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: child,
    })
}
