//! A SigstoreStack brought up by the operator binary on the real control
//! plane: stage Jobs run (by the test Job runner, as this project's binary
//! under each stack's own ServiceAccount) against a real Trillian on
//! MariaDB; workloads are marked available by the kubelet stand-in only
//! once every key they mount exists.

mod support;

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, Secret},
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sigstore_operator::{
    api::{Phase, SigstoreStack, SigstoreStackStatus},
    conditions::{READY, find},
    names::Log,
    stage::createtree::display_name,
    trillian::Trillian,
};
use support::{
    ControlPlane, Operator, TestNamespace, bind_operator_role, eventually,
    jobs::{JobRunner, RunnerOptions},
    kubelet::Kubelet,
    trillian::trillian,
};

const WAIT: Duration = Duration::from_secs(120);

/// One test's cluster side: an operator with config/rbac's permissions, the
/// Job runner and the kubelet stand-in, all on the test's namespace.
struct Env {
    cp: &'static ControlPlane,
    client: Client,
    ns: TestNamespace,
    user: String,
    op: Option<Operator>,
    runner: Option<JobRunner>,
    rewrites: Vec<(String, String)>,
    kubelet: Kubelet,
}

impl Env {
    /// `trillian_for` maps each stack to the Trillian address its stage
    /// processes dial (cluster DNS stands in as a rewrite).
    async fn start(test: &str, stacks: &[&str], trillian_at: &str) -> Self {
        let cp = support::control_plane();
        let client = cp.client().await;
        let ns = TestNamespace::new(&client, test).await;
        let user = format!("operator-{}", ns.name);
        bind_operator_role(&client, &user).await;
        let rewrites: Vec<(String, String)> = stacks
            .iter()
            .map(|s| {
                (
                    format!("{s}-trillian-log-server.{}.svc:8090", ns.name),
                    trillian_at.to_owned(),
                )
            })
            .collect();
        let runner = JobRunner::start(
            cp,
            &ns.name,
            RunnerOptions {
                rewrites: rewrites.clone(),
                ..RunnerOptions::default()
            },
        )
        .await;
        let kubelet = Kubelet::start(client.clone(), &ns.name);
        let mut env = Self {
            cp,
            client,
            ns,
            user,
            op: None,
            runner: Some(runner),
            rewrites,
            kubelet,
        };
        env.start_operator("operator");
        env
    }

    fn start_operator(&mut self, log: &str) {
        self.start_operator_with_env(log, &[]);
    }

    /// Stops the operator and the Job runner, and starts both again with
    /// their clocks `offset` ahead (libfaketime), as if that much time had
    /// passed.
    async fn restart_later(&mut self, log: &str, offset: &str) {
        drop(self.op.take());
        drop(self.runner.take());
        let env = support::tuf::faketime_env(offset);
        self.runner = Some(
            JobRunner::start(
                self.cp,
                &self.ns.name,
                RunnerOptions {
                    rewrites: self.rewrites.clone(),
                    env: env.clone(),
                    ..RunnerOptions::default()
                },
            )
            .await,
        );
        self.start_operator_with_env(log, &env);
    }

    fn start_operator_with_env(&mut self, log: &str, env: &[(String, String)]) {
        let kubeconfig = self.cp.kubeconfig_for(&self.user, &[]);
        self.op = Some(Operator::start_with_env(
            &kubeconfig,
            support::logs_dir(),
            &format!("{}-{log}", self.ns.name),
            &[
                "--watch-namespace",
                &self.ns.name,
                "--image",
                "sigstore-operator:test",
                "--stage-timeout",
                "15s",
                "--stage-backoff-limit",
                "1",
                "--stage-retry-base",
                "2s",
            ],
            env,
        ));
    }

    fn stacks(&self) -> Api<SigstoreStack> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// What `stack` owns of kind `K` (by its instance label).
    async fn owned<K>(&self, stack: &str) -> Vec<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let selector = format!("app.kubernetes.io/instance={stack}");
        self.api::<K>()
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list")
            .items
    }

    async fn create_stack(&self, name: &str, spec: Value) {
        let body: SigstoreStack = serde_json::from_value(json!({
            "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        self.stacks()
            .create(&PostParams::default(), &body)
            .await
            .expect("create the stack");
    }

    /// Waits until `check` holds on the stack's status.
    async fn status_until(
        &self,
        stack: &str,
        what: &str,
        check: impl Fn(&SigstoreStackStatus) -> bool,
    ) -> SigstoreStackStatus {
        eventually(&format!("{stack}: {what}"), WAIT, || async {
            let s = self.stacks().get(stack).await.ok()?.status?;
            check(&s).then_some(s)
        })
        .await
    }

    async fn condition_until(&self, stack: &str, type_: &str, status: &str) -> SigstoreStackStatus {
        self.status_until(stack, &format!("{type_}={status}"), |s| {
            find(&s.conditions, type_).is_some_and(|c| c.status == status)
        })
        .await
    }

    async fn secret(&self, name: &str) -> BTreeMap<String, ByteString> {
        self.api::<Secret>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Secret {name}: {e}"))
            .data
            .unwrap_or_default()
    }

    async fn tree_id(&self, stack: &str, log: Log) -> String {
        let cm = self
            .api::<ConfigMap>()
            .get(&format!("{stack}-{}-config", log.as_str()))
            .await
            .expect("tree ConfigMap");
        cm.data.unwrap_or_default()["treeID"].clone()
    }

    /// Names of `stage`'s Jobs.
    async fn job_names(&self, stage: &str) -> Vec<String> {
        self.jobs()
            .await
            .iter()
            .filter(|j| stage_of(j) == stage)
            .map(|j| j.name_any())
            .collect()
    }

    async fn jobs(&self) -> Vec<Job> {
        self.api::<Job>()
            .list(&ListParams::default())
            .await
            .expect("jobs")
            .items
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> String {
    String::from_utf8(data.get(key).map(|v| v.0.clone()).unwrap_or_default()).unwrap()
}

/// Trees of `stack`'s `log` in Trillian.
async fn trees(ns: &str, stack: &str, log: Log) -> Vec<i64> {
    let t = Trillian::connect_lazy(&trillian().address).unwrap();
    let name = display_name(ns, stack, log);
    t.list_trees()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.display_name == name)
        .map(|t| t.tree_id)
        .collect()
}

fn stage_of(job: &Job) -> String {
    job.labels()
        .get("scaffolding.sigstore.dev/stage")
        .cloned()
        .unwrap_or_default()
}

fn deployment_names(stack: &str) -> Vec<String> {
    [
        "trillian-db",
        "trillian-log-server",
        "trillian-log-signer",
        "rekor-redis",
        "rekor",
        "ctlog",
        "fulcio",
        "tsa",
    ]
    .iter()
    .map(|p| format!("{stack}-{p}"))
    .collect()
}

/// `spec: {}` from nothing to Ready, in dependency order; then re-applying
/// changes nothing, the operator goes quiet, deleted outputs come back with
/// the same keys and tree, and deleting the stack removes what it owns.
#[tokio::test]
async fn empty_spec_comes_up_in_order_and_settles() {
    let env = Env::start("bring-up", &["demo"], &trillian().address).await;
    let ns = env.ns.name.clone();
    env.create_stack("demo", json!({})).await;

    // Stages without inputs start at once; the trees wait for Trillian.
    env.condition_until("demo", "CertsCreated", "True").await;
    let status = env.condition_until("demo", "RekorKeyCreated", "True").await;
    let tree = find(&status.conditions, "RekorTreeCreated").unwrap();
    assert_eq!(tree.reason, "WaitingForInputs", "{}", tree.message);
    assert!(
        tree.message.contains("demo-trillian-log-server"),
        "{}",
        tree.message
    );
    let ct = find(&status.conditions, "CTConfigCreated").unwrap();
    assert_eq!(ct.reason, "WaitingForInputs");
    assert!(
        env.jobs()
            .await
            .iter()
            .all(|j| ["certs", "rekor-key", "tsa-chain"].contains(&stage_of(j).as_str())),
        "only stages without inputs ran"
    );

    // Trillian comes up: the trees, then the CT config.
    env.kubelet.allow(&[
        "demo-trillian-db",
        "demo-trillian-log-server",
        "demo-trillian-log-signer",
    ]);
    env.condition_until("demo", "CTConfigCreated", "True").await;
    let jobs = env.jobs().await;
    let finished = |stage: &str| {
        jobs.iter()
            .find(|j| stage_of(j) == stage)
            .and_then(|j| j.status.as_ref()?.completion_time.clone())
            .unwrap_or_else(|| panic!("{stage} finished"))
    };
    let ctconfig = jobs.iter().find(|j| stage_of(j) == "ctconfig").unwrap();
    let started = ctconfig.metadata.creation_timestamp.clone().unwrap();
    assert!(started >= finished("ctlog-tree") && started >= finished("certs"));
    // One attempt per stage (createtuf may have started too: its input,
    // the trust root, is published in the pass that sees the CT config).
    let mut stages: Vec<String> = jobs.iter().map(stage_of).collect();
    stages.retain(|s| s != "tuf");
    stages.sort();
    assert_eq!(
        stages,
        [
            "certs",
            "ctconfig",
            "ctlog-tree",
            "rekor-key",
            "rekor-tree",
            "tsa-chain"
        ],
        "one attempt per stage: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    assert!(jobs.iter().all(|j| j.name_any().ends_with("-1")));

    // Every workload exists, owned and labelled, referencing the outputs.
    let deployments: Api<Deployment> = env.api();
    for name in deployment_names("demo") {
        let d = deployments.get(&name).await.expect(&name);
        let owner = &d.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("SigstoreStack", "demo")
        );
        assert_eq!(d.labels()["app.kubernetes.io/instance"], "demo");
        assert_eq!(
            d.labels()["app.kubernetes.io/managed-by"],
            "sigstore-operator"
        );
        let pod = d.spec.unwrap().template.spec.unwrap();
        let sc = pod.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        for c in &pod.containers {
            let csc = c.security_context.as_ref().unwrap();
            assert_eq!(csc.allow_privilege_escalation, Some(false), "{name}");
            assert_eq!(
                csc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
                &["ALL"]
            );
            assert!(
                c.image.as_ref().unwrap().contains("@sha256:"),
                "{name} pinned"
            );
        }
    }
    let fulcio_config = env
        .api::<ConfigMap>()
        .get("demo-fulcio-config")
        .await
        .unwrap();
    let config = &fulcio_config.data.unwrap()["config.yaml"];
    assert!(
        config.contains(&env.cp.server),
        "the cluster's issuer: {config}"
    );
    let fulcio = deployments.get("demo-fulcio").await.unwrap();
    let args = fulcio.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.contains(&format!(
        "--ct-log-url=http://demo-ctlog.{ns}.svc/sigstorescaffolding"
    )));

    // Components come up once their keys exist; then Ready.
    env.kubelet.allow_all();
    let ready = env.condition_until("demo", READY, "True").await;
    assert_eq!(ready.phase, Some(Phase::Ready));
    let rekor = ready.rekor.clone().unwrap();
    assert_eq!(
        rekor.tree_id.unwrap().to_string(),
        env.tree_id("demo", Log::Rekor).await
    );
    assert_eq!(
        rekor.url.as_deref(),
        Some(format!("http://demo-rekor.{ns}.svc").as_str())
    );
    assert_eq!(
        rekor.public_key.unwrap(),
        text(&env.secret("demo-rekor-pub").await, "public")
    );
    let ctlog = ready.ctlog.clone().unwrap();
    assert_eq!(
        ctlog.public_key.unwrap(),
        text(&env.secret("demo-ctlog-pub").await, "public")
    );
    let tsa = ready.tsa.clone().unwrap();
    assert_eq!(
        tsa.url.as_deref(),
        Some(format!("http://demo-tsa.{ns}.svc").as_str())
    );
    assert_eq!(
        tsa.certificate_chain.unwrap(),
        text(&env.secret("demo-tsa-pub").await, "cert-chain")
    );
    let root = ready.fulcio.clone().unwrap().root_certificate.unwrap();
    assert!(text(&env.secret("demo-fulcio-pub").await, "cert").contains(root.trim()));
    assert_eq!(
        ready.trillian.clone().unwrap().address.as_deref(),
        Some(format!("demo-trillian-log-server.{ns}.svc:8090").as_str())
    );
    // The published trust root describes exactly this stack's material.
    let reference = ready.trusted_root.clone().expect("trusted root in status");
    let trust = env.api::<ConfigMap>().get(&reference.name).await.unwrap();
    let trust_data = trust.data.unwrap();
    let root: sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot =
        serde_json::from_str(&trust_data[&reference.key]).expect("a TrustedRoot");
    let der_of = |pem: &str| {
        x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents
    };
    let rekor_der = der_of(&text(&env.secret("demo-rekor-pub").await, "public"));
    let tlog = &root.tlogs[0];
    assert_eq!(tlog.base_url, format!("http://demo-rekor.{ns}.svc"));
    assert_eq!(
        tlog.log_id.as_ref().unwrap().key_id,
        <sha2::Sha256 as sha2::Digest>::digest(&rekor_der).to_vec()
    );
    assert_eq!(root.ctlogs.len(), 1);
    assert_eq!(root.certificate_authorities.len(), 1);
    assert_eq!(
        root.timestamp_authorities[0]
            .cert_chain
            .as_ref()
            .unwrap()
            .certificates
            .len(),
        3
    );
    assert!(trust_data["signing_config.json"].contains(&format!("http://demo-fulcio.{ns}.svc")));
    let status_json = serde_json::to_string(&ready).unwrap();
    assert!(
        !status_json.contains("PRIVATE KEY"),
        "no private key in status"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for r in [
        "CertsRunning",
        "CertsCreated",
        "RekorTreeCreated",
        "CTConfigCreated",
        "Ready",
    ] {
        assert!(reasons.iter().any(|x| x == r), "event {r} in {reasons:?}");
    }

    // Settled: re-applying the same stack and 60 s of quiet write nothing.
    let before = settle(&env).await;
    let same: Value = json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
        "metadata": {"name": "demo"}, "spec": {},
    });
    env.stacks()
        .patch(
            "demo",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&same),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = env.cp.writes_by(&env.user);
    assert_eq!(
        after.len(),
        before.len(),
        "writes after settling: {:?}",
        &after[before.len()..]
    );

    // Deleted outputs come back; nothing that still exists changes.
    let rekor_tree = env.tree_id("demo", Log::Rekor).await;
    let ct_private = text(&env.secret("demo-ctlog").await, "private");
    let ca_cert = text(&env.secret("demo-fulcio-ca").await, "cert");
    let rekor_private = text(&env.secret("demo-rekor-signer").await, "private");
    let cms: Api<ConfigMap> = env.api();
    cms.delete("demo-rekor-config", &DeleteParams::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = env.api();
    secrets
        .delete("demo-ctlog-pub", &DeleteParams::default())
        .await
        .unwrap();
    secrets
        .delete("demo-fulcio-pub", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the outputs restored", WAIT, || async {
        let tree = cms
            .get_opt("demo-rekor-config")
            .await
            .ok()??
            .data?
            .get("treeID")?
            .clone();
        let ct = secrets.get_opt("demo-ctlog-pub").await.ok()??.data?;
        let fulcio = secrets.get_opt("demo-fulcio-pub").await.ok()??.data?;
        (ct.contains_key("public") && fulcio.contains_key("cert")).then_some(tree)
    })
    .await;
    assert_eq!(
        env.tree_id("demo", Log::Rekor).await,
        rekor_tree,
        "same tree, adopted"
    );
    assert_eq!(
        trees(&ns, "demo", Log::Rekor).await.len(),
        1,
        "no second tree"
    );
    assert_eq!(text(&env.secret("demo-ctlog").await, "private"), ct_private);
    assert_eq!(text(&env.secret("demo-fulcio-ca").await, "cert"), ca_cert);
    assert_eq!(text(&env.secret("demo-fulcio-pub").await, "cert"), ca_cert);
    assert_eq!(
        text(&env.secret("demo-rekor-signer").await, "private"),
        rekor_private
    );
    let trust_after = env.api::<ConfigMap>().get("demo-trust-root").await.unwrap();
    assert_eq!(
        trust_after.data.unwrap()["trusted_root.json"],
        trust_data["trusted_root.json"],
        "the same material keeps the same trust root"
    );
    env.condition_until("demo", READY, "True").await;

    // Deleting the stack removes everything it owns.
    env.stacks()
        .delete("demo", &DeleteParams::background())
        .await
        .unwrap();
    eventually("owned objects collected", WAIT, || async {
        let left = deployments
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len()
            + secrets
                .list(&ListParams::default().labels("app.kubernetes.io/instance=demo"))
                .await
                .ok()?
                .items
                .len()
            + env
                .api::<Job>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
        (left == 0).then_some(())
    })
    .await;
}

/// Waits until the operator's writes stop changing for 3 s; returns them.
async fn settle(env: &Env) -> Vec<support::AuditWrite> {
    let mut last = env.cp.writes_by(&env.user);
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = env.cp.writes_by(&env.user);
        if now.len() == last.len() {
            return now;
        }
        last = now;
    }
}

/// The operator killed mid-bring-up and started again: the stack finishes
/// with one tree per log and the keys made before the restart.
#[tokio::test]
async fn operator_restart_mid_bring_up_keeps_trees_and_keys() {
    let mut env = Env::start("restart", &["demo"], &trillian().address).await;
    env.create_stack("demo", json!({})).await;
    env.condition_until("demo", "CertsCreated", "True").await;
    env.condition_until("demo", "RekorKeyCreated", "True").await;
    let ca = text(&env.secret("demo-fulcio-ca").await, "cert");
    let rekor_key = text(&env.secret("demo-rekor-signer").await, "public");
    // Kill it hard while the trees are about to start.
    env.kubelet.allow(&[
        "demo-trillian-db",
        "demo-trillian-log-server",
        "demo-trillian-log-signer",
    ]);
    eventually("a tree Job", WAIT, || async {
        env.jobs()
            .await
            .iter()
            .any(|j| stage_of(j).ends_with("-tree"))
            .then_some(())
    })
    .await;
    drop(env.op.take());
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.start_operator("operator-2");
    env.kubelet.allow_all();
    env.condition_until("demo", READY, "True").await;
    let ns = env.ns.name.clone();
    assert_eq!(trees(&ns, "demo", Log::Rekor).await.len(), 1);
    assert_eq!(trees(&ns, "demo", Log::Ctlog).await.len(), 1);
    assert_eq!(text(&env.secret("demo-fulcio-ca").await, "cert"), ca);
    assert_eq!(
        text(&env.secret("demo-rekor-signer").await, "public"),
        rekor_key
    );
    let per_stage: BTreeMap<String, usize> =
        env.jobs().await.iter().fold(BTreeMap::new(), |mut m, j| {
            *m.entry(stage_of(j)).or_default() += 1;
            m
        });
    assert!(
        per_stage.values().all(|n| *n == 1),
        "one Job per stage: {per_stage:?}"
    );
}

/// A stage that cannot reach Trillian fails, says why, and is retried until
/// Trillian answers; then the stack comes up.
#[tokio::test]
async fn failing_stage_shows_its_reason_then_recovers() {
    let [port] = support::procs::free_ports::<1>().unwrap();
    let env = Env::start("failing", &["demo"], &format!("127.0.0.1:{port}")).await;
    env.kubelet.allow_all();
    env.create_stack("demo", json!({"ctlog": {"enabled": false}}))
        .await;
    let failed = env
        .status_until("demo", "RekorTreeCreated failed", |s| {
            find(&s.conditions, "RekorTreeCreated").is_some_and(|c| c.reason == "Failed")
        })
        .await;
    let c = find(&failed.conditions, "RekorTreeCreated").unwrap();
    assert!(c.message.contains("attempt 1"), "{}", c.message);
    assert!(
        c.message.to_lowercase().contains("trillian") || c.message.contains("Unavailable"),
        "the reason names the cause: {}",
        c.message
    );
    assert_eq!(failed.phase, Some(Phase::Degraded));
    let ready = find(&failed.conditions, READY).unwrap();
    assert_eq!(ready.reason, "StageFailed");
    // A spec change starts the count again, at once: a new attempt 1.
    let first = env.job_names("rekor-tree").await;
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fulcio": {"ca": {"subject": {"organization": "o2"}}}}})),
        )
        .await
        .unwrap();
    eventually("a fresh attempt 1 after the spec change", WAIT, || async {
        env.jobs()
            .await
            .iter()
            .find(|j| {
                stage_of(j) == "rekor-tree"
                    && !first.contains(&j.name_any())
                    && j.annotations()
                        .get("scaffolding.sigstore.dev/attempt")
                        .map(String::as_str)
                        == Some("1")
            })
            .map(|_| ())
    })
    .await;
    // Trillian "returns": its address now answers.
    let _proxy = support::procs::tcp_proxy(port, &trillian().address);
    let up = env.condition_until("demo", READY, "True").await;
    let c = find(&up.conditions, "RekorTreeCreated").unwrap();
    assert_eq!(c.reason, "Created");
    let attempts = env.job_names("rekor-tree").await;
    assert!(
        attempts.iter().all(|n| !first.contains(n)),
        "the attempts before the spec change were replaced: {attempts:?}"
    );
    assert!(
        attempts.len() <= 2,
        "superseded attempts are cleaned up: {attempts:?}"
    );
}

/// Two stacks in one namespace come up side by side without touching each
/// other's objects; the user's CA Secret is read, never changed, and stays
/// when its stack goes.
#[tokio::test]
async fn two_stacks_share_a_namespace() {
    let env = Env::start("two-stacks", &["a", "b"], &trillian().address).await;
    env.kubelet.allow_all();
    // b brings its own CA, made by createcerts for a throwaway stack.
    let secrets: Api<Secret> = env.api();
    let out = support::run_cli(
        &env.cp.kubeconfig,
        &[
            "stage",
            "createcerts",
            "--stack",
            "mine",
            "--namespace",
            &env.ns.name,
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mine = secrets.get("mine-fulcio-ca").await.unwrap();
    let user_ca: Secret = serde_json::from_value(json!({
        "metadata": {"name": "user-ca"},
        "data": {
            "cert": mine.data.as_ref().unwrap()["cert"],
            "private": mine.data.as_ref().unwrap()["private"],
            "password": mine.data.as_ref().unwrap()["password"],
        },
    }))
    .unwrap();
    let user_ca = secrets
        .create(&PostParams::default(), &user_ca)
        .await
        .unwrap();
    env.create_stack("a", json!({})).await;
    env.create_stack(
        "b",
        json!({
            "ctlog": {"prefix": "b-log"},
            "fulcio": {"ca": {"existingSecret": "user-ca"}},
            "trillian": {"database": {"storage": {"size": "1Gi"}}},
        }),
    )
    .await;
    let a = env.condition_until("a", READY, "True").await;
    let b = env.condition_until("b", READY, "True").await;
    // b keeps its database on a claim it owns; a has none.
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = env.api();
    let claim = claims.get("b-trillian-db").await.expect("b's claim");
    assert_eq!(claim.owner_references()[0].name, "b");
    assert!(claims.get_opt("a-trillian-db").await.unwrap().is_none());
    assert_ne!(a.rekor.unwrap().tree_id, b.rekor.unwrap().tree_id);
    assert_ne!(
        a.fulcio.unwrap().root_certificate,
        b.fulcio.clone().unwrap().root_certificate
    );
    assert!(
        text(&env.secret("b-fulcio-pub").await, "cert")
            .contains(b.fulcio.unwrap().root_certificate.unwrap().trim())
    );
    // Every object carries its own stack's label and owner.
    for d in env
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let instance = d.labels()["app.kubernetes.io/instance"].clone();
        assert!(d.name_any().starts_with(&format!("{instance}-")));
        assert_eq!(d.owner_references()[0].name, instance);
    }
    let b_before: Vec<(String, String)> = env
        .owned::<Secret>("b")
        .await
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap()))
        .collect();
    env.stacks()
        .delete("a", &DeleteParams::background())
        .await
        .unwrap();
    eventually("a's objects collected", WAIT, || async {
        let left = env.owned::<Deployment>("a").await.len();
        (left == 0).then_some(())
    })
    .await;
    let b_after: Vec<(String, String)> = env
        .owned::<Secret>("b")
        .await
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap()))
        .collect();
    assert_eq!(b_before, b_after, "b untouched");
    let b_deployments = env.owned::<Deployment>("b").await;
    assert_eq!(
        b_deployments.len(),
        9,
        "Trillian (3), Rekor (2), CT log, Fulcio, TSA, TUF"
    );
    // The user's Secret: same version after use, and kept after b goes.
    env.stacks()
        .delete("b", &DeleteParams::background())
        .await
        .unwrap();
    eventually("b's Secrets collected", WAIT, || async {
        let left = env.owned::<Secret>("b").await.len();
        (left == 0).then_some(())
    })
    .await;
    let kept = secrets.get("user-ca").await.expect("the user's CA stays");
    assert_eq!(kept.resource_version(), user_ca.resource_version());
}

/// The runner expands `$(VAR)` and cuts log tails as Kubernetes does.
#[test]
fn runner_follows_kubernetes_rules() {
    use support::jobs::{expand, tail};
    let env = vec![("A".to_owned(), "x".to_owned())];
    assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    assert_eq!(tail(&"l\n".repeat(100)).lines().count(), 80);
    assert!(tail(&"x".repeat(5000)).len() <= 2048);
}

/// The TUF repository: built once the trust root is published, served by
/// the TUF workload, and re-signed by the operator before it expires. With
/// the operator's and the stages' clocks moved past the timestamp's re-sign
/// time, a new timestamp follows; python-tuf, with its clock past the first
/// timestamp's expiry, refuses the old repository and accepts the new one.
/// root.json and the role keys stay through the restart.
#[tokio::test]
async fn tuf_repository_is_re_signed_before_it_expires() {
    let mut env = Env::start("tuf", &["demo"], &trillian().address).await;
    env.kubelet.allow_all();
    // The shortest lifetimes the API accepts, so the clock moves by minutes.
    env.create_stack(
        "demo",
        json!({"tuf": {"expiry": {"timestamp": "1h", "snapshot": "2h"}}}),
    )
    .await;
    let ready = env.condition_until("demo", READY, "True").await;
    let tuf = ready.tuf.clone().expect("tuf in status");
    assert_eq!(
        tuf.url.as_deref(),
        Some(format!("http://demo-tuf.{}.svc", env.ns.name).as_str())
    );
    let reference = tuf.root.expect("root.json referenced from status");
    let repo = |env: &Env| {
        let api = env.api::<ConfigMap>();
        async move { api.get("demo-tuf-repository").await.unwrap() }
    };
    let first = repo(&env).await;
    let files_v1 = first.data.clone().unwrap();
    let root_json = support::logs_dir().join(format!("{}-root.json", env.ns.name));
    std::fs::write(&root_json, &files_v1[&reference.key]).unwrap();
    let version = |files: &BTreeMap<String, String>| {
        let ts: Value = serde_json::from_str(&files["timestamp.json"]).unwrap();
        ts["signed"]["version"].as_u64().unwrap()
    };
    assert_eq!(version(&files_v1), 1);
    let keys_version = env
        .api::<Secret>()
        .get("demo-tuf-keys")
        .await
        .unwrap()
        .metadata
        .resource_version;

    let served = support::tuf::Served::start(&env.ns.name, &files_v1);
    let trust = env.api::<ConfigMap>().get("demo-trust-root").await.unwrap();
    let published = &trust.data.unwrap()["trusted_root.json"];
    let fetched = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", None)
        .expect("python-tuf reads the repository");
    assert_eq!(
        &fetched, published,
        "the TUF target is the published trust root"
    );
    let refused = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", Some("+70m"))
        .expect_err("70 minutes on, the first timestamp has expired");
    assert!(refused.contains("xpired"), "{refused}");

    // 40 minutes on (past half the timestamp's hour), the operator runs
    // the stage again and a new timestamp is signed.
    env.restart_later("operator-later", "+40m").await;
    let files_v2 = eventually("a re-signed timestamp", WAIT, || async {
        let files = repo(&env).await.data.unwrap();
        (version(&files) > 1).then_some(files)
    })
    .await;
    assert_eq!(
        files_v2["root.json"], files_v1["root.json"],
        "root.json stays"
    );
    assert_eq!(
        files_v2
            .keys()
            .filter(|k| k.ends_with(".targets.json"))
            .count(),
        1,
        "nothing new to list: targets were not signed again"
    );
    served.update(&files_v2);
    let fetched = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", Some("+70m"))
        .unwrap_or_else(|e| {
            panic!("python-tuf, 70 minutes on, refused the re-signed repository: {e}")
        });
    assert_eq!(&fetched, published);
    // A restarted TUF server (a new Pod on the same ConfigMap) serves the
    // same root.
    drop(served);
    let restarted = support::tuf::Served::start(&format!("{}-2", env.ns.name), &files_v2);
    let served_root = reqwest::get(format!("{}/1.root.json", restarted.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served_root, files_v1["root.json"]);
    let status = env
        .condition_until("demo", "TUFRepositoryCreated", "True")
        .await;
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(
        env.api::<Secret>()
            .get("demo-tuf-keys")
            .await
            .unwrap()
            .metadata
            .resource_version,
        keys_version,
        "the role keys were never rewritten"
    );
}
