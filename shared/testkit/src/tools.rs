//! The project's pinned tools before anything else on PATH: `ci/tools.sh` installs them into
//! a virtualenv of their own, and another moto first on PATH (5.2.1 answers
//! CompleteMultipartUpload with the wrong XML root element) fails the pipeline in ways that
//! look like our bugs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The moto version `ci/tools.sh` pins (`MOTO_VERSION`); a test keeps the two equal.
pub const PINNED_MOTO: &str = "5.2.5";

/// Where `ci/tools.sh` installs the tools: `$INTRADAY_TOOLS_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/intraday/tools`.
pub fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("INTRADAY_TOOLS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("intraday/tools"))
}

/// `moto_server`: the pinned one if `ci/setup.sh` installed it, else the first on PATH.
pub fn moto_server() -> Option<PathBuf> {
    find_moto(tools_dir().as_deref(), std::env::var_os("PATH").as_deref())
}

fn find_moto(tools_dir: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let pinned = tools_dir
        .map(|d| d.join("bin/moto_server"))
        .filter(|p| p.is_file());
    pinned.or_else(|| {
        std::env::split_paths(path?)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// The moto version behind a `moto_server` script, from the Python beside it (a virtualenv's
/// `bin/python`); `None` when it cannot be told.
pub fn moto_version(moto_server: &Path) -> Option<String> {
    let python = moto_server.parent()?.join("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('moto'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A warning to print when the moto found is not the pinned one; `None` when it is.
pub fn moto_warning(moto_server: &Path) -> Option<String> {
    match moto_version(moto_server) {
        Some(v) if v == PINNED_MOTO => None,
        found => Some(format!(
            "{} is moto {}, not the pinned {PINNED_MOTO}; run ci/setup.sh to install the pinned tools",
            moto_server.display(),
            found.as_deref().unwrap_or("of an unknown version")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_moto_comes_before_another_on_path() {
        let root = std::env::temp_dir().join(crate::unique("tools"));
        let (tools, other) = (root.join("tools"), root.join("other"));
        for dir in [tools.join("bin"), other.clone()] {
            std::fs::create_dir_all(&dir).expect("dir");
        }
        std::fs::write(other.join("moto_server"), "").expect("other moto");
        let path = std::env::join_paths([&other]).expect("path");
        assert_eq!(
            find_moto(Some(&tools), Some(&path)),
            Some(other.join("moto_server"))
        );
        std::fs::write(tools.join("bin/moto_server"), "").expect("pinned moto");
        assert_eq!(
            find_moto(Some(&tools), Some(&path)),
            Some(tools.join("bin/moto_server"))
        );
        assert_eq!(find_moto(None, None), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_pinned_version_is_the_one_ci_installs() {
        let tools =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ci/tools.sh"))
                .expect("ci/tools.sh");
        assert!(
            tools.contains(&format!("MOTO_VERSION=\"{PINNED_MOTO}\"")),
            "ci/tools.sh pins another moto than PINNED_MOTO"
        );
    }
}
