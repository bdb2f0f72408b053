//! The test node agent on the real control plane: the Deployment,
//! ReplicaSet and Job controllers make Pods, and the agent runs them as
//! local processes with their own network, mounts and identity.

mod support;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{ConfigMap, Pod, Secret, Service},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};
use support::eventually;

const WAIT: Duration = Duration::from_secs(90);

async fn create<K>(client: &Client, ns: &str, body: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(body).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

/// A web server Deployment that serves a ConfigMap, behind a Service.
fn web(name: &str, config_map: &str) -> (Value, Value) {
    let labels = json!({"app": name});
    let deployment = json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsUser": 65532, "runAsNonRoot": true},
                    "containers": [{
                        "name": "web",
                        "image": "sigstore-operator:test",
                        "command": ["/usr/local/bin/sigstore-operator"],
                        "args": ["serve-tuf", "--dir=/srv/files", "--http-addr=0.0.0.0:8080"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "files", "mountPath": "/srv/files", "readOnly": true}],
                    }],
                    "volumes": [{"name": "files", "configMap": {"name": config_map,
                        "items": [{"key": "timestamp.json", "path": "timestamp.json"},
                                  {"key": "hello", "path": "hello"}]}}],
                },
            },
        },
    });
    let service = json!({
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    (deployment, service)
}

async fn available(client: &Client, ns: &str, name: &str) -> bool {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    d.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True")
}

/// A Deployment is held back until its ConfigMap key exists, then becomes
/// Available through the real controllers; a Job in its own Pod reaches it
/// by Service name, reads a Secret through env, and calls the API server
/// with its mounted service-account token.
#[tokio::test]
async fn pods_run_with_their_network_mounts_and_identity() {
    let (_cp, client, ns, agent) = support::node::cluster("node", &[]).await;

    let (deployment, service) = web("web", "files");
    create::<Deployment>(&client, &ns.name, deployment).await;
    create::<Service>(&client, &ns.name, service).await;
    // No ConfigMap yet: the Pod exists, waits, and says why.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    eventually("a Pod waiting for its ConfigMap", WAIT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let pod = list.items.into_iter().next()?;
        let waiting = pod
            .status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .waiting?;
        (waiting.reason.as_deref() == Some("ContainerCreating")).then_some(())
    })
    .await;
    assert!(!available(&client, &ns.name, "web").await);
    create::<ConfigMap>(
        &client,
        &ns.name,
        json!({"metadata": {"name": "files"},
               "data": {"timestamp.json": "{}", "hello": "hello from a ConfigMap\n"}}),
    )
    .await;
    eventually("Deployment web Available", WAIT, || async {
        available(&client, &ns.name, "web").await.then_some(())
    })
    .await;

    create::<Secret>(
        &client,
        &ns.name,
        json!({"metadata": {"name": "word"}, "stringData": {"word": "bird"}}),
    )
    .await;
    let script = format!(
        "set -e\n\
         test \"$(curl -sf http://web.{ns}.svc/hello)\" = 'hello from a ConfigMap'\n\
         test \"$(curl -sf http://web/hello)\" = 'hello from a ConfigMap'\n\
         test \"$WORD\" = bird\n\
         test \"$(cat /proc/sys/kernel/hostname)\" = \"$POD_NAME\"\n\
         test \"$POD_NAME\" != {machine}\n\
         sa=/var/run/secrets/kubernetes.io/serviceaccount\n\
         test \"$(cat $sa/namespace)\" = {ns}\n\
         curl -sf --cacert $sa/ca.crt -H \"Authorization: Bearer $(cat $sa/token)\" \
           https://kubernetes.default.svc/api >/dev/null\n\
         echo all good\n",
        ns = ns.name,
        // Each Pod has its own hostname, its name, as a kubelet gives it.
        machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    create::<Job>(
        &client,
        &ns.name,
        json!({"metadata": {"name": "fetch"},
               "spec": {"backoffLimit": 0, "template": {"spec": {
                   "restartPolicy": "Never",
                   "containers": [{"name": "fetch", "image": "debian", "command": ["sh", "-c", script],
                       "env": [{"name": "WORD", "valueFrom": {"secretKeyRef": {"name": "word", "key": "word"}}},
                               {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}}),
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let outcome = eventually("Job fetch finished", WAIT, || async {
        let job = jobs.get("fetch").await.ok()?;
        let conditions = job.status?.conditions?;
        conditions
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .map(|c| c.type_.clone())
    })
    .await;
    assert_eq!(
        outcome,
        "Complete",
        "the Job's Pod log: {}",
        std::fs::read_to_string(
            support::logs_dir()
                .join("pods")
                .join(format!("{}-fetch-", ns.name))
        )
        .unwrap_or_default()
    );
    assert!(agent.started.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    // A deleted Pod's processes stop; its ReplicaSet's next Pod serves.
    let old = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let old_ip = old.status.unwrap().pod_ip.unwrap();
    let old_name = old.metadata.name.unwrap();
    pods.delete(&old_name, &Default::default()).await.unwrap();
    eventually("the deleted Pod gone", WAIT, || async {
        pods.get_opt(&old_name).await.ok()?.is_none().then_some(())
    })
    .await;
    let refused = tokio::net::TcpStream::connect(format!("{old_ip}:8080")).await;
    assert!(
        refused.is_err(),
        "nothing serves at the deleted Pod's address"
    );
    eventually("Deployment web Available again", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let ready = list.items.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        ready.then_some(())
    })
    .await;
}
