//! A test-only Job runner. No kubelet and no Job controller run here, so
//! this does their part for the Jobs the operator creates: it makes each
//! attempt's Pod, runs the Pod's container command (this project's binary)
//! as a local process with the Pod's env resolved and the Pod's
//! ServiceAccount as its identity, then records the outcome in the Pod's
//! and the Job's status as the kubelet and the Job controller would.

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Container, Pod},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{ControlPlane, logs_dir};

/// How the runner behaves.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Substring replacements applied to every argument and env value: they
    /// stand in for cluster DNS, e.g. a Service address → `127.0.0.1:port`.
    pub rewrites: Vec<(String, String)>,
    /// The pause between a failed Pod and the next (the Job controller's
    /// backoff, shortened).
    pub pod_retry_delay: Duration,
    /// Environment added to every process (e.g. a moved clock).
    pub env: Vec<(String, String)>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            rewrites: Vec::new(),
            pod_retry_delay: Duration::from_secs(1),
            env: Vec::new(),
        }
    }
}

/// A running Job runner for one namespace; stops (killing its processes)
/// when dropped.
pub struct JobRunner {
    task: tokio::task::JoinHandle<()>,
}

impl JobRunner {
    /// Starts running the Jobs of `namespace`.
    pub async fn start(cp: &'static ControlPlane, namespace: &str, options: RunnerOptions) -> Self {
        let client = cp.client().await;
        let ns = namespace.to_owned();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            // Jobs taken on, by UID: each is run by one task only.
            let mut seen = BTreeSet::new();
            loop {
                let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
                if let Ok(list) = jobs.list(&ListParams::default()).await {
                    for job in list.items {
                        let uid = job.uid().unwrap_or_default();
                        if finished(&job) || !seen.insert(uid) {
                            continue;
                        }
                        let run = Run {
                            cp,
                            client: client.clone(),
                            ns: ns.clone(),
                            options: options.clone(),
                        };
                        tasks.spawn(async move { run.job(job).await });
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Self { task }
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        // Aborting drops the JoinSet, which aborts every Job task; their
        // processes are killed on drop.
        self.task.abort();
    }
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// Now, cut to whole seconds as the API server stores times (cut, not
/// rounded, so a time recorded here never lies after a later one there).
fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap())
}

struct Run {
    cp: &'static ControlPlane,
    client: Client,
    ns: String,
    options: RunnerOptions,
}

/// How one Pod ended.
struct Exit {
    success: bool,
    code: i32,
    tail: String,
}

impl Run {
    async fn job(self, job: Job) {
        let name = job.name_any();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.ns);
        let spec = job.spec.clone().unwrap_or_default();
        let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0) as u32;
        let started = now();
        let deadline = spec
            .active_deadline_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s.max(0) as u64));
        let mut failed = 0u32;
        loop {
            let status = json!({"status": {"startTime": started, "active": 1, "failed": failed}});
            if jobs
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .is_err()
            {
                return;
            }
            // None: the Job went away meanwhile.
            let Some(exit) = self.pod(&job, deadline).await else {
                return;
            };
            if exit.success {
                let t = now();
                let body = json!({"status": {
                    "startTime": started, "active": 0, "failed": failed, "succeeded": 1,
                    "ready": 0, "completionTime": t,
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": t, "lastTransitionTime": t},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": t, "lastTransitionTime": t},
                    ],
                }});
                self.finish(&jobs, &name, &body).await;
                return;
            }
            failed += 1;
            let past_deadline = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if failed > backoff_limit || past_deadline {
                let (reason, message) = if past_deadline {
                    (
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                } else {
                    (
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                };
                let t = now();
                let body = json!({"status": {
                    "startTime": started, "active": 0, "failed": failed, "ready": 0,
                    "conditions": [
                        {"type": "FailureTarget", "status": "True", "reason": reason, "message": message,
                         "lastProbeTime": t, "lastTransitionTime": t},
                        {"type": "Failed", "status": "True", "reason": reason, "message": message,
                         "lastProbeTime": t, "lastTransitionTime": t},
                    ],
                }});
                self.finish(&jobs, &name, &body).await;
                return;
            }
            tokio::time::sleep(self.options.pod_retry_delay).await;
        }
    }

    async fn finish(&self, jobs: &Api<Job>, name: &str, body: &serde_json::Value) {
        if let Err(e) = jobs
            .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            // Loud: a status the API server refuses is a runner bug.
            eprintln!("job runner: cannot record the end of Job {name}: {e}");
        }
    }

    /// Runs one Pod of `job`; `None` when the Job went away meanwhile.
    async fn pod(&self, job: &Job, deadline: Option<tokio::time::Instant>) -> Option<Exit> {
        let job_name = job.name_any();
        let template = job.spec.as_ref()?.template.clone();
        let mut pod_spec = template.spec.clone().unwrap_or_default();
        let suffix: String = {
            let n = Timestamp::now().as_nanosecond() as u64;
            (0..5)
                .map(|i| char::from(b"bcdfghjklmnpqrstvwxz2456789"[((n >> (i * 5)) % 27) as usize]))
                .collect()
        };
        let pod_name = format!("{job_name}-{suffix}");
        let uid = job.uid().unwrap_or_default();
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        for (k, v) in [
            ("batch.kubernetes.io/job-name", job_name.as_str()),
            ("job-name", job_name.as_str()),
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("controller-uid", uid.as_str()),
        ] {
            labels.insert(k.into(), v.into());
        }
        pod_spec.restart_policy = Some("Never".into());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(pod_name.clone()),
                labels: Some(labels),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: job_name.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(pod_spec.clone()),
            status: None,
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        if let Err(e) = pods.create(&PostParams::default(), &pod).await {
            eprintln!("job runner: cannot create Pod {pod_name}: {e}");
            return None;
        }
        let container = pod_spec.containers.first()?.clone();
        let sa = pod_spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let exit = match self.resolve_env(&container, &pod_name).await {
            Ok(env) => {
                self.exec(&container, env, &sa, &pod_name, &job_name, deadline)
                    .await?
            }
            Err(e) => Exit {
                success: false,
                code: 1,
                tail: e,
            },
        };
        let t = now();
        let terminated = json!({
            "exitCode": exit.code,
            "reason": if exit.success { "Completed" } else { "Error" },
            "startedAt": t, "finishedAt": t,
            "message": if exit.success { serde_json::Value::Null } else { json!(exit.tail) },
        });
        let status = json!({"status": {
            "phase": if exit.success { "Succeeded" } else { "Failed" },
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "",
                "ready": false, "restartCount": 0, "started": false,
                "state": {"terminated": terminated},
            }],
        }});
        if let Err(e) = pods
            .patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            eprintln!("job runner: cannot record the end of Pod {pod_name}: {e}");
        }
        Some(exit)
    }

    fn rewrite(&self, value: &str) -> String {
        self.options
            .rewrites
            .iter()
            .fold(value.to_owned(), |v, (from, to)| v.replace(from, to))
    }

    /// The container's env as the kubelet resolves it, in order.
    async fn resolve_env(&self, c: &Container, pod: &str) -> Result<Vec<(String, String)>, String> {
        super::kubelet::resolve_env(&self.client, &self.ns, pod, c, Vec::new(), |v| {
            self.rewrite(v)
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Runs the container's command; `None` when the Job was deleted.
    async fn exec(
        &self,
        c: &Container,
        env: Vec<(String, String)>,
        service_account: &str,
        pod: &str,
        job: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<Exit> {
        let mut argv: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(|a| self.rewrite(&expand(a, &env)))
            .collect();
        if argv.is_empty() {
            return Some(Exit {
                success: false,
                code: 1,
                tail: "no command".into(),
            });
        }
        let program = if argv[0].rsplit('/').next() == Some("sigstore-operator") {
            super::operator_bin()
        } else {
            return Some(Exit {
                success: false,
                code: 127,
                tail: format!("the runner only runs sigstore-operator, not {}", argv[0]),
            });
        };
        argv.remove(0);
        let ns = &self.ns;
        let kubeconfig = self.cp.kubeconfig_for(
            &format!("system:serviceaccount:{ns}:{service_account}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{ns}"),
                "system:authenticated",
            ],
        );
        let dir = logs_dir().join("jobs");
        std::fs::create_dir_all(&dir).ok()?;
        let log = dir.join(format!("{pod}.log"));
        let file = std::fs::File::create(&log).ok()?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv)
            .env_clear()
            .envs(env)
            .env("KUBECONFIG", &kubeconfig)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().ok()?)
            .stderr(file)
            .kill_on_drop(true);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Some(Exit {
                    success: false,
                    code: 127,
                    tail: e.to_string(),
                });
            }
        };
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.ns);
        let status = loop {
            tokio::select! {
                s = child.wait() => break s.ok()?,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let gone = matches!(jobs.get_opt(job).await, Ok(None));
                    let late = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                    if gone || late {
                        let _ = child.kill().await;
                        if gone {
                            return None;
                        }
                    }
                }
            }
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Some(Exit {
            success: status.success(),
            code: status.code().unwrap_or(137),
            tail: tail(&output),
        })
    }
}

/// The kubelet's FallbackToLogsOnError message: the last 80 lines of the
/// log, at most 2048 bytes.
pub fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.len().saturating_sub(80);
    let text = lines[start..].join("\n");
    let mut cut = text.len().saturating_sub(2048);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_owned()
}

/// Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`; unknown
/// references stay as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + 3 + end]),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
