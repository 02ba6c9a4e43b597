//! Starting moto server on a free loopback port for the local pipeline.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::CtlError;

/// A moto server this process started; it stops when this is dropped.
pub struct Moto {
    pub endpoint: String,
    _child: Child,
}

/// Where `moto_server` may be: on PATH, or where `ci/setup.sh` installs it.
fn find() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(tools) = std::env::var_os("INTRADAY_TOOLS_DIR") {
        dirs.push(PathBuf::from(tools).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/intraday/tools/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

pub async fn start() -> Result<Moto, CtlError> {
    let binary = find().ok_or_else(|| {
        CtlError::Other("moto_server was not found: run ci/setup.sh (it installs moto server), or pass --endpoint-url of one you started".into())
    })?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CtlError::Other(format!("no free loopback port: {e}")))?;
    let child = Command::new(&binary)
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
