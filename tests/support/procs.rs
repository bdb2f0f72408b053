//! Child processes that die with the test binary.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

type Reply = mpsc::Sender<std::io::Result<u32>>;

/// Spawns children from one thread that lives as long as the process, so
/// `PR_SET_PDEATHSIG` (which fires when the spawning *thread* exits) kills
/// them only when the test binary itself goes away, even by SIGKILL.
pub struct Keeper {
    dir: PathBuf,
    requests: Mutex<mpsc::Sender<(String, Command, Reply)>>,
    children: Arc<Mutex<Vec<(String, Child)>>>,
}

impl Keeper {
    /// Starts the keeper; children log into `dir`.
    pub fn start(dir: &Path) -> Self {
        let (tx, rx) = mpsc::channel::<(String, Command, Reply)>();
        let children: Arc<Mutex<Vec<(String, Child)>>> = Arc::default();
        let kept = children.clone();
        std::thread::Builder::new()
            .name("process-keeper".into())
            .spawn(move || {
                for (name, mut cmd, reply) in rx {
                    let result = cmd.spawn().map(|child| {
                        let pid = child.id();
                        kept.lock().unwrap().push((name, child));
                        pid
                    });
                    let _ = reply.send(result);
                }
                // The sender lives in a static; park so the thread never exits.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn keeper thread");
        Self {
            dir: dir.to_owned(),
            requests: Mutex::new(tx),
            children,
        }
    }

    /// Starts `program` with `args`, logging to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, program: &Path, args: &[String]) -> anyhow::Result<u32> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .current_dir(&self.dir);
        // SAFETY: prctl is async-signal-safe and touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        self.requests
            .lock()
            .unwrap()
            .send((name.to_owned(), cmd, tx))
            .context("keeper thread is gone")?;
        rx.recv()
            .context("keeper thread is gone")?
            .with_context(|| format!("cannot start {}", program.display()))
    }

    /// Fails with the log tail if a child has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let mut children = self.children.lock().unwrap();
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "{name} exited with {status}; last log lines:\n{}",
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// Waits until something listens on 127.0.0.1:`port`; fails with the
    /// log tail if a child exits first.
    pub fn wait_port(&self, port: u16, what: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{what} did not listen on port {port} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the child `pid` (SIGTERM, then SIGKILL after 5 s) and forgets
    /// it, so its exit is not taken for a crash.
    pub fn stop(&self, pid: u32) {
        let mut children = self.children.lock().unwrap();
        if let Some(i) = children.iter().position(|(_, c)| c.id() == pid) {
            let (_, mut child) = children.remove(i);
            // SAFETY: sending a signal to a pid we own.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM to every child, SIGKILL to those still up after 5 s.
    pub fn stop_all(&self) {
        let Ok(mut children) = self.children.lock() else {
            return;
        };
        for (_, child) in children.iter() {
            // SAFETY: sending a signal to a pid we own.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in children.iter_mut() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        children.clear();
    }
}

/// `N` distinct free TCP ports on 127.0.0.1.
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// Waits until `url` answers 200, trusting `ca_pem` for https.
pub fn wait_http_ok(
    url: &str,
    ca_pem: Option<&str>,
    timeout: Duration,
    keeper: &Keeper,
) -> anyhow::Result<()> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = ca_pem {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
    }
    let client = builder.build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match rt.block_on(async { client.get(url).send().await }) {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        keeper.check_alive()?;
        if Instant::now() > deadline {
            bail!("{url} not ready after {timeout:?}: {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP proxy from `127.0.0.1:port` to `target`; stops when dropped. It
/// lets a test make a server appear at an address that was dead.
pub struct TcpProxy(tokio::task::JoinHandle<()>);

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a [`TcpProxy`].
pub fn tcp_proxy(port: u16, target: &str) -> TcpProxy {
    let target = target.to_owned();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy port");
    listener.set_nonblocking(true).expect("nonblocking");
    TcpProxy(tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}
