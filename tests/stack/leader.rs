//! Two operator replicas on one control plane, electing a leader on a
//! Lease with config/rbac's leader-election Role: only the leader writes,
//! a SIGKILLed leader is replaced within the lease duration (plus the
//! standby's look interval), a stack applied meanwhile comes up with one
//! tree per log and one Job per stage, and SIGTERM hands the Lease over at
//! once.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::DynamicObject;

use super::*;

/// The test's election timing: short, so the handover is quick to watch.
const LEASE: Duration = Duration::from_secs(6);
const RETRY: Duration = Duration::from_secs(1);

fn election_flags(ns: &str, identity: &str) -> Vec<String> {
    [
        "--leader-elect",
        "--leader-election-namespace",
        ns,
        "--leader-election-identity",
        identity,
        "--leader-election-lease-duration",
        "6s",
        "--leader-election-renew-deadline",
        "4s",
        "--leader-election-retry-period",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// config/rbac's leader-election Role and binding, moved into `ns` and
/// bound to `users`: what the shipped Role allows is all they get.
async fn bind_election_role(client: &Client, ns: &str, users: &[&str]) {
    let path = support::repo_root().join("config/rbac");
    let mut objects: Vec<DynamicObject> = support::manifests::read_dir(&path)
        .into_iter()
        .filter(|o| o.name_any().ends_with("-leader-election"))
        .collect();
    assert_eq!(
        objects.len(),
        2,
        "config/rbac has the election Role and binding"
    );
    for o in &mut objects {
        o.metadata.namespace = Some(ns.to_owned());
        if o.types.as_ref().is_some_and(|t| t.kind == "RoleBinding") {
            o.data["subjects"] = users
                .iter()
                .map(
                    |u| json!({"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"}),
                )
                .collect();
        }
    }
    support::manifests::apply(client, &objects, ns).await;
}

/// The writes `user` made, leaving out its Lease renewals.
fn stack_writes(env: &Env, user: &str) -> Vec<support::AuditWrite> {
    env.cp
        .writes_by(user)
        .into_iter()
        .filter(|w| w.resource != "leases")
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn leads(op: &Operator) -> bool {
    op.metric("sigstore_operator_leader").await == Some(1.0)
}

async fn holder(env: &Env) -> Option<String> {
    env.api::<Lease>()
        .get_opt("sigstore-operator")
        .await
        .ok()??
        .spec?
        .holder_identity
}

fn one_job_per_stage(jobs: &[Job], stack: &str) {
    let mut per_stage: BTreeMap<String, usize> = BTreeMap::new();
    for j in jobs.iter().filter(|j| {
        j.labels()
            .get("app.kubernetes.io/instance")
            .map(String::as_str)
            == Some(stack)
    }) {
        *per_stage.entry(stage_of(j)).or_default() += 1;
    }
    assert!(!per_stage.is_empty(), "{stack} ran stages");
    assert!(
        per_stage.values().all(|n| *n == 1),
        "{stack}: one Job per stage: {per_stage:?}"
    );
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_hand_over_when_it_dies() {
    let env = Env::start_bare("leader", &["first", "late"], &trillian().address).await;
    let ns = env.ns.name.clone();
    let (a, b, c) = (format!("{ns}-a"), format!("{ns}-b"), format!("{ns}-c"));
    for user in [&a, &b, &c] {
        bind_operator_role(&env.client, user).await;
    }
    bind_election_role(&env.client, &ns, &[&a, &b, &c]).await;
    env.kubelet.allow_all();

    let flags = |id: &str| election_flags(&ns, id);
    let fa = flags("replica-a");
    let op_a = env.operator_as(&a, "replica-a", &strs(&fa), &[]);
    eventually("replica a leads", WAIT, || async {
        leads(&op_a).await.then_some(())
    })
    .await;
    let fb = flags("replica-b");
    let op_b = env.operator_as(&b, "replica-b", &strs(&fb), &[]);
    eventually("replica b stands by, ready", WAIT, || async {
        let standing = op_b.metric("sigstore_operator_leader").await == Some(0.0);
        let ready = op_b.get("/readyz").await.is_some_and(|(s, _)| s == 200);
        (standing && ready).then_some(())
    })
    .await;
    assert_eq!(holder(&env).await.as_deref(), Some("replica-a"));

    env.create_stack("first", json!({})).await;
    env.condition_until("first", READY, "True").await;
    assert!(!stack_writes(&env, &a).is_empty(), "the leader wrote");
    let by_b = stack_writes(&env, &b);
    assert!(by_b.is_empty(), "the standby wrote nothing: {by_b:?}");

    // The leader killed outright: no release, the Lease must expire.
    drop(op_a);
    let killed = Instant::now();
    env.create_stack("late", json!({})).await;
    eventually("replica b leads", WAIT, || async {
        leads(&op_b).await.then_some(())
    })
    .await;
    let handover = killed.elapsed();
    eprintln!(
        "leader SIGKILLed: replica b leads after {:.1}s (lease {LEASE:?}, look every {RETRY:?})",
        handover.as_secs_f64()
    );
    // Bounded by the lease duration from the last renewal b saw, which it
    // sees within one look interval, and one more look to act.
    assert!(
        handover <= LEASE + RETRY * 2 + Duration::from_millis(500),
        "handover took {handover:?}"
    );
    assert_eq!(holder(&env).await.as_deref(), Some("replica-b"));
    env.condition_until("late", READY, "True").await;
    for stack in ["first", "late"] {
        assert_eq!(trees(&ns, stack, Log::Rekor).await.len(), 1, "{stack}");
        assert_eq!(trees(&ns, stack, Log::Ctlog).await.len(), 1, "{stack}");
    }
    let jobs = env.jobs().await;
    one_job_per_stage(&jobs, "first");
    one_job_per_stage(&jobs, "late");

    // SIGTERM: the leader stops, gives the Lease up, and the standby takes
    // it at its next look instead of waiting for it to expire.
    let fc = flags("replica-c");
    let op_c = env.operator_as(&c, "replica-c", &strs(&fc), &[]);
    eventually("replica c stands by", WAIT, || async {
        (op_c.metric("sigstore_operator_leader").await == Some(0.0)).then_some(())
    })
    .await;
    let mut op_b = op_b;
    let asked = Instant::now();
    let status = op_b.terminate(Duration::from_secs(30)).expect("b exits");
    assert!(
        status.success(),
        "b exits cleanly: {status:?}\n{}",
        op_b.logs()
    );
    assert!(
        op_b.logs().contains("released the lease"),
        "{}",
        op_b.logs()
    );
    eventually("replica c leads", WAIT, || async {
        leads(&op_c).await.then_some(())
    })
    .await;
    let handover = asked.elapsed();
    eprintln!(
        "leader SIGTERMed: replica c leads after {:.1}s",
        handover.as_secs_f64()
    );
    assert!(handover < LEASE, "released, not expired: {handover:?}");
}
