//! MariaDB (from apt) with Trillian's schema, and a Trillian log server and
//! signer (built by `make tools`), once per test binary.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use anyhow::{Context, bail};

use super::{keeper, logs_dir, mark_failed, procs::free_ports, tool};

/// A running Trillian.
pub struct TrillianEnv {
    /// The log server's gRPC address, `127.0.0.1:<port>`.
    pub address: String,
    /// MariaDB's port on 127.0.0.1.
    pub mysql_port: u16,
}

static TRILLIAN: OnceLock<Result<TrillianEnv, String>> = OnceLock::new();

/// The Trillian of this test binary, started on first use.
pub fn trillian() -> &'static TrillianEnv {
    let started = TRILLIAN.get_or_init(|| match start() {
        Ok(t) => Ok(t),
        Err(e) => Err(format!("{e:#} (logs in {})", logs_dir().display())),
    });
    match started {
        Ok(t) => t,
        Err(e) => {
            mark_failed();
            panic!("cannot start Trillian: {e}")
        }
    }
}

/// Finds a program from Debian's packages.
fn system_program(names: &[&str]) -> anyhow::Result<PathBuf> {
    for name in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return Ok(p);
            }
        }
    }
    bail!(
        "none of {names:?} is installed: run `make tools` (it installs mariadb-server and \
         redis-server from apt)"
    )
}

/// The operator's own Trillian schema: the file its log server applies on
/// every start, so the tests prove Trillian runs on it.
fn schema() -> anyhow::Result<PathBuf> {
    Ok(super::repo_root().join("src/trillian/schema.sql"))
}

fn sql(client: &Path, port: u16, db: Option<&str>, input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut cmd = Command::new(client);
    cmd.args([
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        &port.to_string(),
        "-u",
        "root",
    ]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "mariadb client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn start() -> anyhow::Result<TrillianEnv> {
    let mariadbd = system_program(&["mariadbd", "mysqld"])?;
    let install_db = system_program(&["mariadb-install-db", "mysql_install_db"])?;
    let client = system_program(&["mariadb", "mysql"])?;
    let log_server = tool("trillian_log_server")?;
    let log_signer = tool("trillian_log_signer")?;
    let schema = schema()?;

    let data = logs_dir().join("mariadb");
    std::fs::create_dir_all(&data)?;
    let out = Command::new(&install_db)
        .args([
            "--no-defaults",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .context("mariadb-install-db")?;
    anyhow::ensure!(
        out.status.success(),
        "mariadb-install-db failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let [mysql_port, rpc, http, signer_http] = free_ports::<4>()?;
    keeper().spawn(
        "mariadb",
        &mariadbd,
        &[
            "--no-defaults".into(),
            "--user=root".into(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", data.join("mysqld.sock").display()),
            format!("--pid-file={}", data.join("mysqld.pid").display()),
            format!("--port={mysql_port}"),
            "--bind-address=127.0.0.1".into(),
            "--skip-grant-tables".into(),
            "--skip-log-bin".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--innodb-flush-log-at-trx-commit=0".into(),
        ],
    )?;
    keeper().wait_port(mysql_port, "mariadb", Duration::from_secs(60))?;
    sql(
        &client,
        mysql_port,
        None,
        "CREATE DATABASE IF NOT EXISTS trillian;",
    )?;
    // Twice: the log server's init container applies it on every start.
    let statements = std::fs::read_to_string(&schema)?;
    for _ in 0..2 {
        sql(&client, mysql_port, Some("trillian"), &statements)?;
    }

    let uri = format!("--mysql_uri=root@tcp(127.0.0.1:{mysql_port})/trillian");
    keeper().spawn(
        "trillian_log_server",
        &log_server,
        &[
            "--storage_system=mysql".into(),
            "--quota_system=mysql".into(),
            uri.clone(),
            format!("--rpc_endpoint=127.0.0.1:{rpc}"),
            format!("--http_endpoint=127.0.0.1:{http}"),
        ],
    )?;
    keeper().spawn(
        "trillian_log_signer",
        &log_signer,
        &[
            "--storage_system=mysql".into(),
            "--quota_system=mysql".into(),
            uri,
            "--force_master".into(),
            format!("--rpc_endpoint=127.0.0.1:{}", free_ports::<1>()?[0]),
            format!("--http_endpoint=127.0.0.1:{signer_http}"),
        ],
    )?;
    keeper().wait_port(rpc, "trillian_log_server", Duration::from_secs(60))?;
    Ok(TrillianEnv {
        address: format!("127.0.0.1:{rpc}"),
        mysql_port,
    })
}
