//! `make local-up`'s entry point (`target/debug/examples/local`, which
//! `make test` builds), run as a user runs it: up to Ready; the cosign 3 and
//! cosign 2 commands it prints run exactly as printed, from a fresh HOME;
//! `local down` (what `make local-down` runs) stops it, and no process of
//! it and no Pod network namespace is left.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/debug/examples/local`, beside this test's `deps/`.
fn entry_point() -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .join("examples/local");
    assert!(
        path.exists(),
        "{} is missing: `make test` builds it (cargo build --example local)",
        path.display()
    );
    path
}

fn pod_netns() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("sopod-"))
        .map(str::to_owned)
        .collect()
}

/// Processes other than this one whose command line, working directory or
/// environment names `dir`: everything `local up` started does.
fn processes_of(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let base = entry.path();
        let stat = std::fs::read_to_string(base.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(base.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(base.join("environ")).unwrap_or_default();
        let cwd = std::fs::read_link(base.join("cwd")).unwrap_or_default();
        let names = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&needle);
        if names(&cmdline) || names(&environ) || cwd.starts_with(dir) {
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// The indented lines after the line starting with `header`, up to the
/// first blank one: one block of printed commands.
fn block(out: &str, header: &str) -> String {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(header));
    assert!(lines.next().is_some(), "no {header:?} in:\n{out}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads `child`'s stdout until `marker`, failing if it exits first.
fn wait_for(
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
    marker: &str,
    log: &Mutex<String>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut out = String::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.starts_with(marker);
                out.push_str(&line);
                out.push('\n');
                if done {
                    return out;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                panic!(
                    "local up ended ({status:?}) before {marker:?}:\n{out}\n{}",
                    log.lock().unwrap()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} within 10 minutes:\n{out}\n{}",
            log.lock().unwrap()
        );
    }
}

#[test]
fn local_up_brings_the_sample_to_ready_prints_commands_that_sign_and_local_down_stops_it() {
    // Any Pod namespace a test before left is removed when the agent
    // starts, so whatever is there at the end is this run's.
    let dir = repo_root()
        .join(".test-logs")
        .join(format!("local_up-{}", std::process::id()));
    let start = Instant::now();
    let mut up = Command::new(entry_point())
        .arg("up")
        .env("LOCAL_DIR", &dir)
        .env(
            "SIGSTORE_OPERATOR_BIN",
            env!("CARGO_BIN_EXE_sigstore-operator"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start local up");
    let (tx, lines) = mpsc::channel();
    let stdout = up.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = up.stderr.take().expect("stderr");
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });

    let out = wait_for(&mut up, &lines, "Stop it with make local-down", &log);
    let ready_after = start.elapsed();
    println!("{out}");
    assert!(
        out.contains("Stack sample is Ready in namespace sigstore"),
        "{out}"
    );

    // Each block exactly as printed, as a user pasting it would run it.
    let home = dir.join("user-home");
    std::fs::create_dir_all(&home).unwrap();
    for major in ["3", "2"] {
        let commands = block(&out, &format!("Sign and verify with cosign {major}"));
        let run = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &commands])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .current_dir(&home)
            .output()
            .expect("run bash");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            run.status.success() && printed.contains("Verified OK"),
            "cosign {major}'s printed commands failed:\n{commands}\n---\n{printed}"
        );
    }

    // `make local-down`'s entry point.
    let stopping = Instant::now();
    let down = Command::new(entry_point())
        .arg("down")
        .env("LOCAL_DIR", &dir)
        .output()
        .expect("run local down");
    assert!(
        down.status.success(),
        "local down failed: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let status = up.wait().expect("wait for local up");
    let stopped_after = stopping.elapsed();
    assert!(
        status.success(),
        "local up ended with {status}:\n{}",
        log.lock().unwrap()
    );
    assert!(!dir.join("pid").exists(), "local up removed its pid file");

    // Nothing left: no process of it, no Pod network.
    let mut left = processes_of(&dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = processes_of(&dir);
    }
    assert!(
        left.is_empty(),
        "processes left after local down:\n{}",
        left.join("\n")
    );
    assert!(
        pod_netns().is_empty(),
        "Pod network namespaces left: {:?}",
        pod_netns()
    );
    // A second down finds nothing and says so.
    let again = Command::new(entry_point())
        .arg("down")
        .env("LOCAL_DIR", &dir)
        .output()
        .expect("run local down");
    assert!(again.status.success());

    println!(
        "local up: start → commands printed (Ready) in {:.1} s; local down → everything stopped in {:.1} s",
        ready_after.as_secs_f64(),
        stopped_after.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
