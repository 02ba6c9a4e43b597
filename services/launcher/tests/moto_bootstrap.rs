//! infra/emr/bootstrap.sh, the bootstrap action the launcher names, run as EMR runs it on a
//! node (bash and the AWS CLI) against moto server: it installs the extractor and the Spark
//! driver only when their SHA-256 matches, and writes the data key service's TLS material
//! readable by the step's user only, without ever printing it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use intraday_testkit as kit;
use sha2::{Digest, Sha256};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/emr/bootstrap.sh");
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBclientcert\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEsecretkeymaterial\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBtheca\n-----END CERTIFICATE-----\n";

fn run(args: &[&str]) -> Output {
    let found = Command::new("sh")
        .args(["-c", "command -v aws"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the AWS CLI is needed to run the bootstrap action: run ci/test.sh (it installs a pinned one) or pip install awscli"
    );
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("AWS_ENDPOINT_URL", kit::moto())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run bash")
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

struct Node {
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Uploads an artifact as `ci/package.sh`'s output is uploaded; its SHA-256, lower-case hex.
async fn upload(aws: &intraday_aws::Aws, bucket: &str, key: &str, body: &[u8]) -> String {
    aws.s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .expect("upload");
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn put_secret(aws: &intraday_aws::Aws, value: &str) -> String {
    let name = format!("/{}/dks-client-tls", kit::unique("itd"));
    aws_sdk_secretsmanager::Client::new(&aws.sdk)
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret");
    name
}

#[tokio::test]
async fn moto_the_bootstrap_action_installs_a_checked_extractor_and_private_tls_material() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let binary = b"\x7fELF the extractor, as uploaded".to_vec();
    let sum = upload(&aws, &bucket, "emr/intraday-extractor", &binary).await;
    let secret = put_secret(
        &aws,
        &serde_json::json!({"certificate": CERT, "private_key": KEY, "ca": CA}).to_string(),
    )
    .await;
    let node = Node {
        dir: std::env::temp_dir().join(kit::unique("node")),
    };
    let install = node.dir.join("usr/local/bin/intraday-extractor");
    let tls = node.dir.join("etc/intraday/dks");
    let from = format!("s3://{bucket}/emr/intraday-extractor");
    let owner = user();
    let args = |sum: &str| {
        vec![
            "--extractor".to_owned(),
            from.clone(),
            "--sha256".to_owned(),
            sum.to_owned(),
            "--install-path".to_owned(),
            install.display().to_string(),
            "--dks-tls-secret".to_owned(),
            secret.clone(),
            "--tls-dir".to_owned(),
            tls.display().to_string(),
            "--owner".to_owned(),
            owner.clone(),
            "--region".to_owned(),
            kit::REGION.to_owned(),
        ]
    };

    // A binary that is not the one the parameters name is refused, and nothing is installed.
    let wrong = "0".repeat(63) + "1";
    let refused = run(&args(&wrong).iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("has SHA-256 {sum}, not {wrong}")),
        "{stderr}"
    );
    assert!(!install.exists());

    let done = run(&args(&sum).iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "{stderr}");
    assert_eq!(std::fs::read(&install).expect("installed"), binary);
    assert_eq!(mode(&install), 0o755);
    assert_eq!(mode(&tls), 0o700);
    for (name, pem) in [("client.crt", CERT), ("client.key", KEY), ("ca.crt", CA)] {
        let path = tls.join(name);
        assert_eq!(std::fs::read_to_string(&path).expect(name), pem);
        assert_eq!(mode(&path), 0o400, "{name} is readable by its owner only");
    }
    let stdout = String::from_utf8_lossy(&done.stdout);
    for secret_line in ["secretkeymaterial", "clientcert", "MIIBtheca"] {
        assert!(
            !stderr.contains(secret_line) && !stdout.contains(secret_line),
            "the TLS material was printed"
        );
    }
    // Nothing is left in a fixed temporary path.
    assert!(!Path::new("/tmp/intraday-extractor").exists());
}

#[tokio::test]
async fn moto_the_bootstrap_action_installs_the_spark_driver_only_when_its_checksum_matches() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let driver = b"# intraday_spark.py, as uploaded\nimport sys\n".to_vec();
    let sum = upload(&aws, &bucket, "emr/intraday_spark.py", &driver).await;
    let node = Node {
        dir: std::env::temp_dir().join(kit::unique("node")),
    };
    // A directory the node does not have yet, as /usr/local/share/intraday/ on EMR.
    let share = node.dir.join("usr/local/share/intraday");
    let install = share.join("intraday_spark.py");
    let from = format!("s3://{bucket}/emr/intraday_spark.py");
    let path = install.display().to_string();
    let owner = user();
    let args = |sum: &str| {
        run(&[
            "--spark-driver",
            &from,
            "--spark-driver-sha256",
            sum,
            "--spark-driver-path",
            &path,
            "--owner",
            &owner,
            "--region",
            kit::REGION,
        ])
    };

    let wrong = "0".repeat(63) + "1";
    let refused = args(&wrong);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the Spark driver at {from} has SHA-256 {sum}, not {wrong}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "upload dist/emr/intraday_spark.py and its dist/emr/intraday_spark.py.sha256 together"
        ),
        "{stderr}"
    );
    assert!(!install.exists());

    let done = args(&sum);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert_eq!(std::fs::read(&install).expect("installed"), driver);
    // A script spark-submit reads as the step's user, not a program; its new directory
    // must let that user through despite the action's umask 077.
    assert_eq!(mode(&install), 0o644);
    assert_eq!(mode(&share), 0o755);

    let half = run(&[
        "--spark-driver",
        &from,
        "--spark-driver-path",
        &path,
        "--owner",
        &owner,
        "--region",
        kit::REGION,
    ]);
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(!half.status.success());
    assert!(
        stderr
            .contains("--spark-driver, --spark-driver-sha256 and --spark-driver-path go together"),
        "{stderr}"
    );
}

#[tokio::test]
async fn moto_a_secret_without_every_pem_is_refused_naming_the_field_and_writes_nothing() {
    let aws = kit::aws().await;
    let secret = put_secret(
        &aws,
        &serde_json::json!({"certificate": CERT, "private_key": KEY}).to_string(),
    )
    .await;
    let node = Node {
        dir: std::env::temp_dir().join(kit::unique("node")),
    };
    let tls = node.dir.join("dks");
    let tls_dir = tls.display().to_string();
    let owner = user();
    let out = run(&[
        "--dks-tls-secret",
        &secret,
        "--tls-dir",
        &tls_dir,
        "--owner",
        &owner,
        "--region",
        kit::REGION,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("`ca` is missing or not PEM"), "{stderr}");
    assert!(!stderr.contains("secretkeymaterial"), "{stderr}");
    assert!(!tls.exists());

    let half = run(&["--extractor", "s3://artifacts/x", "--region", kit::REGION]);
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(!half.status.success());
    assert!(
        stderr.contains("--extractor, --sha256 and --install-path go together"),
        "{stderr}"
    );
}
