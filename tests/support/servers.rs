//! The Sigstore servers (ct_server, Fulcio, Rekor) and Redis, started from
//! files laid out as a pod would mount them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::ByteString;

use super::{keeper, logs_dir, procs::free_ports, tool};

/// Writes every key of a Secret or ConfigMap as a file in a fresh
/// directory, as a volume mount does, and returns the directory.
pub fn mount(name: &str, data: &BTreeMap<String, ByteString>) -> PathBuf {
    let dir = logs_dir().join("mounts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mount dir");
    for (k, v) in data {
        std::fs::write(dir.join(k), &v.0).expect("write mounted key");
    }
    dir
}

/// A mount directory for `name`, created empty.
pub fn mount_dir(name: &str) -> PathBuf {
    let dir = logs_dir().join("mounts").join(name);
    std::fs::create_dir_all(&dir).expect("mount dir");
    dir
}

/// Starts `program` (a built tool or a path) and waits until `port`
/// listens; returns its pid. Panics with the log tail if it exits first.
pub fn serve(log_name: &str, program: &Path, args: &[String], port: u16) -> u32 {
    let pid = keeper()
        .spawn(log_name, program, args)
        .unwrap_or_else(|e| panic!("start {log_name}: {e:#}"));
    if let Err(e) = keeper().wait_port(port, log_name, Duration::from_secs(60)) {
        super::mark_failed();
        panic!("{e:#}");
    }
    pid
}

/// A free port.
pub fn port() -> u16 {
    free_ports::<1>().expect("free port")[0]
}

/// Starts a Redis (from apt) and returns its port.
pub fn redis(name: &str) -> u16 {
    let p = port();
    let dir = mount_dir(&format!("{name}-redis"));
    serve(
        &format!("{name}-redis"),
        Path::new("/usr/bin/redis-server"),
        &[
            "--port".into(),
            p.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ],
        p,
    );
    p
}

/// Path of a built tool; panics with how to build it.
pub fn built(name: &str) -> PathBuf {
    tool(name).unwrap_or_else(|e| {
        super::mark_failed();
        panic!("{e:#}")
    })
}
