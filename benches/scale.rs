//! `make bench-scale`: N stacks applied at once to one operator (its
//! release build, with config/rbac's role), on the real control plane with
//! the tests' Job runner and kubelet stand-in (`tests/stack`'s set-up) and
//! one shared Trillian. Figures only, nothing asserted.
//!
//! Per N (arguments, default 1 10 100): apply → every stage's output
//! written, apply → all Ready, reconcile passes, the operator's API requests
//! by verb per stack during bring-up (audit log: the operator's user is in the group whose reads it records), its peak
//! and settled RSS and CPU seconds, its writes and reads in a minute once
//! settled; then one stack's spec changed and the time to its new Ready
//! while the others stay settled.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::future::join_all;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use sigstore_operator::{
    api::SigstoreStack,
    conditions::{READY, find},
};
use support::{
    Operator, TestNamespace, bind_operator_role,
    jobs::{JobRunner, RunnerOptions},
    kubelet::Kubelet,
    trillian::trillian,
};

/// How long one N may take to settle before the bench gives up on it.
const LIMIT: Duration = Duration::from_secs(900);
/// The quiet window the settled figures are counted over.
const WINDOW: Duration = Duration::from_secs(60);

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![1, 10, 100]
    } else {
        counts
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "scale bench, {} ({} cores), operator {}",
        date(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        support::operator_bin().display()
    );
    for n in counts {
        runtime.block_on(run(n));
    }
}

fn date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `(rss, peak rss)` in KiB and CPU seconds of process `pid`.
fn usage(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15, counted after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (kib("VmRSS:"), kib("VmHWM:"), ticks as f64 / hz)
}

fn by_verb(requests: &[support::AuditWrite]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.verb.clone()).or_default() += 1;
    }
    counts
}

fn per_stack(counts: &BTreeMap<String, usize>, n: usize) -> String {
    counts
        .iter()
        .map(|(verb, c)| format!("{verb} {:.1}", *c as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every stage condition (`…Created`) True, and Ready True: per stack.
fn progress(stacks: &[SigstoreStack]) -> (usize, usize) {
    let mut written = 0;
    let mut ready = 0;
    for s in stacks {
        let conditions = s.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
        let stages: Vec<_> = conditions
            .iter()
            .filter(|c| c.type_.ends_with("Created"))
            .collect();
        if !stages.is_empty() && stages.iter().all(|c| c.status == "True") {
            written += 1;
        }
        if find(conditions, READY).is_some_and(|c| c.status == "True") {
            ready += 1;
        }
    }
    (written, ready)
}

async fn run(n: usize) {
    let cp = support::control_plane();
    let client = cp.client().await;
    let ns = TestNamespace::new(&client, &format!("scale-{n}")).await;
    let user = format!("operator-{}", ns.name);
    bind_operator_role(&client, &user).await;
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let rewrites = names
        .iter()
        .map(|s| {
            (
                format!("{s}-trillian-log-server.{}.svc:8090", ns.name),
                trillian().address.clone(),
            )
        })
        .collect();
    let _runner = JobRunner::start(
        cp,
        &ns.name,
        RunnerOptions {
            rewrites,
            ..RunnerOptions::default()
        },
    )
    .await;
    let kubelet = Kubelet::start(client.clone(), &ns.name);
    kubelet.allow_all();
    let operator = Operator::start(
        &cp.kubeconfig_for(&user, &[support::AUDITED]),
        support::logs_dir(),
        &format!("{}-operator", ns.name),
        &[
            "--watch-namespace",
            &ns.name,
            "--image",
            "sigstore-operator:test",
            "--stage-timeout",
            "60s",
        ],
    );
    let pid = operator.pid();
    support::eventually("the operator answers", Duration::from_secs(30), || async {
        operator.metric("sigstore_operator_reconciles_total").await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _, _) = usage(pid);

    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let body = |name: &str| -> SigstoreStack {
        // No Fulcio or Rekor process runs here (the kubelet stand-in only
        // marks Deployments available): no self-check.
        serde_json::from_value(json!({
            "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
            "metadata": {"name": name}, "spec": {"selfCheck": {"enabled": false}},
        }))
        .expect("stack")
    };
    let start = Instant::now();
    join_all(names.iter().map(|name| {
        let stacks = stacks.clone();
        let body = body(name);
        async move { stacks.create(&PostParams::default(), &body).await }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .expect("create the stacks");

    let (mut written_at, mut ready_at) = (None, None);
    while ready_at.is_none() && start.elapsed() < LIMIT {
        if let Ok(list) = stacks.list(&ListParams::default()).await {
            let (written, ready) = progress(&list.items);
            if written == n && written_at.is_none() {
                written_at = Some(start.elapsed());
            }
            if ready == n {
                ready_at = Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let show = |d: Option<Duration>| {
        d.map_or("not within the limit".to_owned(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    // Settled: no write by the operator for 10 s.
    let mut last = cp.writes_by(&user).len();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(10) && start.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cp.writes_by(&user).len();
        if now != last {
            last = now;
            quiet = Instant::now();
        }
    }
    let bring_up = cp.requests_by(&user);
    let passes = operator
        .metric("sigstore_operator_reconciles_total")
        .await
        .unwrap_or(0.0);
    let (_, peak, cpu) = usage(pid);
    tokio::time::sleep(WINDOW).await;
    let settled: Vec<_> = cp.requests_by(&user).split_off(bring_up.len());
    let (settled_rss, _, settled_cpu) = usage(pid);

    // One spec change among the settled stacks.
    let changed = &names[n / 2];
    let generation = stacks
        .get(changed)
        .await
        .expect("the stack")
        .metadata
        .generation
        .unwrap_or(0);
    let changed_at = Instant::now();
    stacks
        .patch(
            changed,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tuf": {"expiry": {"timestamp": "2h"}}}})),
        )
        .await
        .expect("change the spec");
    let new_ready = support::eventually("the changed stack Ready", LIMIT, || async {
        let s = stacks.get(changed).await.ok()?;
        let status = s.status?;
        (status.observed_generation > Some(generation)
            && find(&status.conditions, READY).is_some_and(|c| c.status == "True"))
        .then(|| changed_at.elapsed())
    })
    .await;
    let (_, final_peak, _) = usage(pid);

    println!("\nN = {n} stacks (namespace {}):", ns.name);
    println!("  apply → every stage output written: {}", show(written_at));
    println!("  apply → all Ready:                  {}", show(ready_at));
    println!(
        "  reconcile passes to settle:         {passes} ({:.1} per stack)",
        passes / n as f64
    );
    println!(
        "  API requests per stack, bring-up:   {}",
        per_stack(&by_verb(&bring_up), n)
    );
    println!(
        "  operator RSS: idle {:.1} MiB, peak {:.1} MiB, settled {:.1} MiB; CPU {:.1} s to settle, {:.2} s in the quiet minute",
        idle_rss as f64 / 1024.0,
        peak.max(final_peak) as f64 / 1024.0,
        settled_rss as f64 / 1024.0,
        cpu,
        settled_cpu - cpu
    );
    let settled_verbs = by_verb(&settled);
    let writes: usize = settled_verbs
        .iter()
        .filter(|(v, _)| ["create", "update", "patch", "delete"].contains(&v.as_str()))
        .map(|(_, c)| c)
        .sum();
    println!(
        "  once settled, per minute: {writes} writes, {} LIST, {} GET, {} WATCH (all: {:?})",
        settled_verbs.get("list").copied().unwrap_or(0),
        settled_verbs.get("get").copied().unwrap_or(0),
        settled_verbs.get("watch").copied().unwrap_or(0),
        settled_verbs
    );
    println!(
        "  one spec change among {n} settled stacks → its new Ready: {:.1} s",
        new_ready.as_secs_f64()
    );
    drop(operator);
}
