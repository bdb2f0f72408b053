//! The TUF repository as clients see it: served by the operator's own
//! `serve-tuf` from a directory written like the kubelet writes a
//! ConfigMap volume, and read by python-tuf, optionally with its clock
//! moved by libfaketime.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::servers::{built, mount_dir, port, serve};

/// libfaketime's preload library, from Debian's `faketime` package.
pub fn libfaketime() -> PathBuf {
    ["x86_64", "aarch64"]
        .iter()
        .map(|a| PathBuf::from(format!("/usr/lib/{a}-linux-gnu/faketime/libfaketime.so.1")))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            super::mark_failed();
            panic!("libfaketime is missing: run `make tools` (it installs Debian's faketime)")
        })
}

/// The environment that runs a (libc-using) process `offset` ahead, e.g.
/// `+40m`; the monotonic clock stays real so timers behave.
pub fn faketime_env(offset: &str) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), libfaketime().display().to_string()),
        ("FAKETIME".into(), offset.into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// A repository served by `serve-tuf`.
pub struct Served {
    /// Its base URL (a TUF mirror).
    pub url: String,
    dir: PathBuf,
    pid: u32,
}

impl Drop for Served {
    fn drop(&mut self) {
        super::keeper().stop(self.pid);
    }
}

impl Served {
    /// Serves `files` (the repository ConfigMap's data) under `name`.
    pub fn start(name: &str, files: &BTreeMap<String, String>) -> Self {
        let dir = mount_dir(&format!("{name}-tuf"));
        let p = port();
        let mut served = Self {
            url: format!("http://127.0.0.1:{p}"),
            dir,
            pid: 0,
        };
        served.update(files);
        served.pid = serve(
            &format!("{name}-serve-tuf"),
            &super::operator_bin(),
            &[
                "serve-tuf".into(),
                format!("--dir={}", served.dir.display()),
                format!("--http-addr=127.0.0.1:{p}"),
            ],
            p,
        );
        served
    }

    /// Replaces the served files with `files`, as the kubelet updates a
    /// ConfigMap volume.
    pub fn update(&self, files: &BTreeMap<String, String>) {
        for entry in std::fs::read_dir(&self.dir).expect("read mount") {
            std::fs::remove_file(entry.expect("entry").path()).expect("remove old file");
        }
        for (k, v) in files {
            std::fs::write(self.dir.join(k), v).expect("write repository file");
        }
    }
}

/// python-tuf fetches `target` from `url` trusting `root` (a root.json
/// file), with its clock moved by `offset` when given: the target's
/// content, or the client's reason for refusing.
pub fn fetch(url: &str, root: &Path, target: &str, offset: Option<&str>) -> Result<String, String> {
    let script = super::repo_root().join("tests/support/tuf_client.py");
    let mut cmd = Command::new(built("python-tuf"));
    cmd.arg(script)
        .args([url, &root.display().to_string(), target])
        .stdin(Stdio::null());
    if let Some(offset) = offset {
        cmd.envs(faketime_env(offset));
    }
    let out = cmd.output().expect("run python-tuf");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
