//! A SigstoreStack brought up by the operator binary on the real control
//! plane: stage Jobs run (by the test Job runner, as this project's binary
//! under each stack's own ServiceAccount) against a real Trillian on
//! MariaDB; workloads are marked available by the kubelet stand-in only
//! once every key they mount exists.

#[path = "../support/mod.rs"]
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

mod bring_up;
mod brought_ca;
mod faults;
mod leader;
mod least_privilege;

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
        let mut env = Self::start_bare(test, stacks, trillian_at).await;
        env.start_operator("operator");
        env
    }

    /// [`Env::start`] without an operator: the test starts its own.
    async fn start_bare(test: &str, stacks: &[&str], trillian_at: &str) -> Self {
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
        Self {
            cp,
            client,
            ns,
            user,
            op: None,
            runner: Some(runner),
            rewrites,
            kubelet,
        }
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
        let user = self.user.clone();
        self.op = Some(self.operator_as(&user, log, &[], env));
    }

    /// The operator binary run as `user` (bound to config/rbac's role),
    /// with this test's flags and `extra`.
    fn operator_as(
        &self,
        user: &str,
        log: &str,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Operator {
        let kubeconfig = self.cp.kubeconfig_for(user, &[support::AUDITED]);
        let mut args = vec![
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
        ];
        args.extend(extra);
        Operator::start_with_env(
            &kubeconfig,
            support::logs_dir(),
            &format!("{}-{log}", self.ns.name),
            &args,
            env,
        )
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

    async fn create_stack(&self, name: &str, mut spec: Value) {
        // No Fulcio or Rekor runs here, only the kubelet stand-in: the
        // self-check is tested where the servers run (tests/e2e, tests/tiles).
        spec["selfCheck"] = json!({"enabled": false});
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
