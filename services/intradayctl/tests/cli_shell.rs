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

/// Runs intradayctl as a new user would, with nothing but `env` set, in an empty home.
fn first_run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let home = std::env::temp_dir().join(format!(
        "intradayctl-first-run-{}-{}",
        std::process::id(),
        args.join("-").replace(['/', ':'], "_")
    ));
    std::fs::create_dir_all(&home).expect("home");
    let out = Command::new(env!("CARGO_BIN_EXE_intradayctl"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .envs(env.iter().copied())
        .output()
        .expect("run intradayctl");
    let _ = std::fs::remove_dir_all(&home);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// First-run mistakes: each its own one-line answer that says what to do, exit status 3
/// (configuration), and no SDK log lines or debug dumps.
#[test]
fn first_run_errors_are_one_line_each_and_say_what_to_do() {
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let no_imds = ("AWS_EC2_METADATA_DISABLED", "true");
    // A port that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        (
            vec!["--region", "eu-west-2", "status"],
            vec![no_imds],
            "intradayctl: no AWS credentials found: set AWS_PROFILE, run `aws configure` or `aws sso login`, or pass --endpoint-url for an emulator".to_owned(),
        ),
        (
            vec!["status"],
            vec![keys[0], keys[1], no_imds],
            "intradayctl: no AWS region: pass --region, set AWS_REGION, or set `region` in your profile (`aws configure`)".to_owned(),
        ),
        (
            vec!["--profile", "nosuch", "--region", "eu-west-2", "status"],
            vec![no_imds],
            "intradayctl: profile `nosuch` is not in ".to_owned(),
        ),
        (
            vec!["--region", "eu-west-2", "--endpoint-url", "http://127.0.0.1:9", "status"],
            vec![keys[0], keys[1]],
            "intradayctl: cannot reach http://127.0.0.1:9 (".to_owned(),
        ),
        (
            vec!["--region", "eu-west-2", "--endpoint-url", &silent_url, "--cli-read-timeout", "1", "status"],
            vec![keys[0], keys[1]],
            format!("intradayctl: cannot reach {silent_url} ("),
        ),
    ];
    for (args, env, want) in cases {
        let (code, stdout, stderr) = first_run(&args, &env);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.starts_with(&want),
            "{args:?}: want {want:?}, got {stderr:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.len() < 400,
            "{args:?}: {} bytes: {stderr}",
            stderr.len()
        );
        assert!(
            !stderr.contains("DispatchFailure") && !stderr.contains("ConnectorError"),
            "{args:?}: a debug dump: {stderr}"
        );
    }
    drop(silent);
}
