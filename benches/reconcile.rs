//! Cost of one reconcile pass's pure work for one stack: build every
//! object from the spec, hash them, decide the stages and compute the
//! status. `make bench` prints the figures; nothing is asserted.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sigstore_operator::{
    api::{SigstoreStack, SigstoreStackSpec},
    build::{self, Images, Inputs, Owner, stages},
    conditions,
    controller::{
        observe::Observed,
        plan,
        status::{self, Facts},
        trust::NotPublished,
    },
};

mod common;

fn bench(name: &str, budget: Duration, f: impl FnMut()) {
    common::bench(name, budget, "µs", f);
}

fn main() {
    let budget = Duration::from_secs(2);
    let spec = SigstoreStackSpec::default();
    let mut stack = SigstoreStack::new("demo", spec.clone());
    stack.metadata.generation = Some(1);
    let owner = Owner {
        name: "demo".into(),
        namespace: "bench".into(),
        uid: "uid".into(),
    };
    let inputs = Inputs {
        owner: owner.clone(),
        spec: &spec,
        images: Images::for_spec(&spec, "sigstore-operator:dev", &Default::default()),
        cluster_issuer: Some("https://kubernetes.default.svc.cluster.local"),
        ctlog_roots: vec!["fulcio-0".into()],
        trust_root: None,
        healed_trees: Default::default(),
        lost_trees: Vec::new(),
    };
    bench("build and hash every object", budget, || {
        for o in build::objects(&inputs).expect("objects") {
            std::hint::black_box(build::content_hash(&o));
        }
    });
    let settings = stages::JobSettings {
        image: "sigstore-operator:dev".into(),
        timeout: "5m".parse().expect("duration"),
        backoff_limit: 3,
        source: Default::default(),
    };
    let observed = Observed::default();
    bench("plan every stage and compute status", budget, || {
        let plans: Vec<_> = plan::enabled_stages(&spec)
            .into_iter()
            .map(|s| {
                let t = stages::template(&owner, &spec, s, &settings);
                let hash = build::content_hash(&t);
                plan::plan(
                    s,
                    plan::state(s, &owner, &spec, &observed),
                    &[],
                    &hash,
                    Timestamp::now(),
                    Duration::from_secs(10),
                )
            })
            .collect();
        let trust = Err(NotPublished::Waiting("bench".into()));
        let facts = Facts {
            owner: &owner,
            observed: &observed,
            plans: &plans,
            trust: &trust,
            logs: &Default::default(),
            fulcio_problem: None,
        };
        std::hint::black_box(status::desired(&stack, Some(&facts), &conditions::now()));
    });
}
