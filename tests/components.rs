//! Each component turned off on a Ready stack and back on, as a user does
//! with `kubectl patch`: on the node agent, with the operator in a Pod from
//! `config/default` (so its ClusterRole is the one users install). What the
//! component ran is deleted, its keys and trees are kept and come back, the
//! trust root closes its entries (so what was signed before still
//! verifies) and the signing config lists only what runs; `Ready` is never
//! said about a spec while what it turned off still runs.

mod support;

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use sigstore_operator::api::SigstoreStack;
use support::{
    clients::{self, Exported},
    eventually,
    stacks::{self, condition, events, sign},
};

const WAIT: Duration = Duration::from_secs(240);
const STACK: &str = "tog";

/// The key material and records a stack must never lose or change.
async fn material(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for part in ["fulcio-ca", "rekor-signer", "ctlog", "tsa", "tuf-keys"] {
        let name = format!("{STACK}-{part}");
        let data = secrets.get(&name).await.unwrap().data.unwrap_or_default();
        assert!(!data.is_empty(), "Secret {name} holds its keys");
        out.insert(name, format!("{:?}", data));
    }
    for log in ["rekor", "ctlog"] {
        let cm = stacks::config_map(client, ns, &format!("{STACK}-{log}-config")).await;
        out.insert(format!("{log} tree"), cm["treeID"].clone());
    }
    let repo = stacks::config_map(client, ns, &format!("{STACK}-tuf-repository")).await;
    out.insert("root.json".into(), repo["root.json"].clone());
    out
}

/// The published trusted root and signing config.
async fn trust(client: &Client, ns: &str) -> (Value, Value) {
    let cm = stacks::config_map(client, ns, &format!("{STACK}-trust-root")).await;
    let parse = |k: &str| serde_json::from_str(&cm[k]).unwrap();
    (parse("trusted_root.json"), parse("signing_config.json"))
}

/// How many entries of `list` are open (no `validFor.end`) and closed.
fn open_closed(list: &Value) -> (usize, usize) {
    let entries = list.as_array().cloned().unwrap_or_default();
    let open = entries
        .iter()
        .filter(|e| {
            let range = e.get("validFor").or_else(|| e["publicKey"].get("validFor"));
            range.is_some_and(|r| r.get("end").is_none())
        })
        .count();
    (open, entries.len() - open)
}

async fn exists<K>(client: &Client, ns: &str, name: &str) -> bool
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

/// One component switched by `patch`: the Deployments it runs, the
/// trusted root's lists it is in, and the signing config's.
struct Switch {
    what: &'static str,
    condition: &'static str,
    patch: fn(bool) -> Value,
    deployments: &'static [&'static str],
    root_lists: &'static [&'static str],
    signing_lists: &'static [&'static str],
}

const SWITCHES: [Switch; 4] = [
    Switch {
        what: "the TSA",
        condition: "TSAAvailable",
        patch: |on| json!({"tsa": {"enabled": on}}),
        deployments: &["tsa"],
        root_lists: &["timestampAuthorities"],
        signing_lists: &["tsaUrls"],
    },
    Switch {
        what: "TUF",
        condition: "TUFAvailable",
        patch: |on| json!({"tuf": {"enabled": on}}),
        deployments: &["tuf"],
        root_lists: &[],
        signing_lists: &[],
    },
    Switch {
        what: "Rekor",
        condition: "RekorAvailable",
        patch: |on| json!({"rekor": {"enabled": on}}),
        deployments: &["rekor", "rekor-redis"],
        root_lists: &["tlogs"],
        signing_lists: &["rekorTlogUrls"],
    },
    Switch {
        what: "Fulcio and the CT log",
        condition: "FulcioAvailable",
        patch: |on| json!({"fulcio": {"enabled": on}, "ctlog": {"enabled": on}}),
        deployments: &["fulcio", "ctlog"],
        root_lists: &["certificateAuthorities", "ctlogs"],
        signing_lists: &["caUrls"],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_turned_off_and_on_keeps_its_keys_and_the_trust_root_truthful() {
    let ((cp, client, ns, _agent), out, vars) = stacks::up_in_cluster("toggle", STACK).await;
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let env = Exported::read(&out);
    let (cosign, blob, bundle) = sign(&env, &out, "signed with every component on\n").await;
    let kept = material(&client, &ns.name).await;

    // The API server refuses what cannot run: the CT log without Fulcio.
    let refused = stacks
        .patch(
            STACK,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"fulcio": {"enabled": false}}})),
        )
        .await
        .expect_err("Fulcio off under a CT log is refused");
    assert!(
        refused.to_string().contains("spec.ctlog.enabled") || refused.to_string().contains("ctlog"),
        "the refusal names the field: {refused}"
    );

    for switch in &SWITCHES {
        let what = switch.what;
        stacks::switch(&stacks, STACK, (switch.patch)(false), WAIT).await;
        // Said Ready about this spec: nothing it turned off runs.
        for part in switch.deployments {
            let name = format!("{STACK}-{part}");
            assert!(
                !exists::<Deployment>(&client, &ns.name, &name).await,
                "{what}: Deployment {name} is gone when Ready"
            );
            assert!(
                !exists::<Service>(&client, &ns.name, &name).await,
                "{what}: Service {name} is gone when Ready"
            );
        }
        let (root, signing) = trust(&client, &ns.name).await;
        for list in switch.root_lists {
            let (open, closed) = open_closed(&root[list]);
            assert_eq!(open, 0, "{what}: no open entry in {list}");
            assert!(closed >= 1, "{what}: {list} keeps its closed entries");
        }
        for list in switch.signing_lists {
            assert!(
                signing[list].as_array().is_none_or(|a| a.is_empty()),
                "{what}: the signing config lists no {list}: {signing}"
            );
        }
        let (_, reason, message) = condition(&stacks, STACK, switch.condition)
            .await
            .unwrap_or_else(|| panic!("{what}: its condition says it is off"));
        assert_eq!(reason, "Disabled", "{what}: {message}");
        assert!(
            message.contains("Kept for when it is enabled again"),
            "{message}"
        );
        // The Event follows the status that says Ready.
        let gone = format!("Deployment {STACK}-{}", switch.deployments[0]);
        eventually(&format!("a Removed Event naming {gone}"), WAIT, || async {
            let removed = events(&client, &ns.name, STACK, "Removed").await;
            removed.iter().any(|m| m.contains(&gone)).then_some(())
        })
        .await;
        if what == "the TSA" {
            // Timestamped while it ran: still verifies with its closed entry.
            let trusted = out.join("trusted_root.tsa-off.json");
            std::fs::write(&trusted, root.to_string()).unwrap();
            let (ok, log) = cosign.verify(Some(&trusted), &blob, &bundle).await;
            assert!(ok, "a bundle from before verifies without the TSA:\n{log}");
        }

        stacks::switch(&stacks, STACK, (switch.patch)(true), WAIT).await;
        for part in switch.deployments {
            let name = format!("{STACK}-{part}");
            assert!(
                exists::<Deployment>(&client, &ns.name, &name).await,
                "{name}"
            );
        }
        assert_eq!(
            material(&client, &ns.name).await,
            kept,
            "{what}: the same keys, trees and root.json came back"
        );
        let (root, _) = trust(&client, &ns.name).await;
        for list in switch.root_lists {
            assert_eq!(
                open_closed(&root[list]).0,
                1,
                "{what}: {list} is open again"
            );
        }
    }

    // After all that, what was signed first verifies with the trust root
    // as it is now, and signing works.
    let (root, signing) = trust(&client, &ns.name).await;
    for list in ["caUrls", "rekorTlogUrls", "tsaUrls"] {
        assert_eq!(signing[list].as_array().map(Vec::len), Some(1), "{list}");
    }
    let trusted = out.join("trusted_root.final.json");
    std::fs::write(&trusted, root.to_string()).unwrap();
    let (ok, log) = cosign.verify(Some(&trusted), &blob, &bundle).await;
    assert!(ok, "the first bundle verifies:\n{log}");
    // Services that were deleted came back on new addresses: stack-up,
    // run again as a user would, exports them.
    let again = out.join("again");
    let mut vars = vars.to_vec();
    vars.push(("INSTALL", "none".into()));
    let (ok, log) = clients::stack_up(&cp.kubeconfig, &again, &vars).await;
    assert!(ok, "hack/stack-up.sh again:\n{log}");
    let env = Exported::read(&again);
    let (_, blob, bundle) = sign(&env, &again, "signed after every switch\n").await;
    let (ok, log) = cosign.verify(Some(&trusted), &blob, &bundle).await;
    assert!(ok, "signing works:\n{log}");
}
