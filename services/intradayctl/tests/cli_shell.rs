//! The CLI's behaviour at the shell, no AWS involved: a reader that closes the pipe early
//! (`intradayctl … | head -1`) ends the output quietly, and completions need no AWS
//! configuration.

use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intradayctl"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start intradayctl");
    // Close the read end before the script is written, as `head` does once it has its line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Completions are `eval`ed in shell start-up files: no region, no profile, no credentials
/// and no instance metadata may be needed, and nothing but the script is printed.
#[test]
fn completions_touch_no_aws_configuration() {
    let home = std::env::temp_dir().join(format!("intradayctl-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("home");
    let out = Command::new(env!("CARGO_BIN_EXE_intradayctl"))
        .args(["completions", "bash"])
        .env_clear()
        .env("HOME", &home)
        .env("AWS_PROFILE", "no-such-profile")
        .output()
        .expect("run intradayctl");
    let _ = std::fs::remove_dir_all(&home);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "printed beside the script: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_intradayctl"));
}
