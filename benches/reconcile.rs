//! Cost of one reconcile pass's pure work for one stack: building and
//! hashing every object, and `decide` on a whole pass (a new stack and a
//! settled one). `make bench` prints the figures; nothing is asserted.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sigstore_operator::{
    api::{SigstoreStack, SigstoreStackSpec},
    build::{self, Images, Inputs, Owner},
    controller::{
        Options,
        decide::{Seen, decide},
    },
    stage::{Stage, job::JobSettings},
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
        tesseract_roots: Vec::new(),
        trust_root: None,
        healed_trees: Default::default(),
        lost_trees: Vec::new(),
        stage_outputs: Stage::all_outputs(&spec, "demo"),
    };
    bench("build and hash every object", budget, || {
        for o in build::objects(&inputs).expect("objects") {
            std::hint::black_box(build::content_hash(&o));
        }
    });
    let options = Options {
        namespace: None,
        concurrency: 1,
        jobs: JobSettings {
            image: "sigstore-operator:dev".into(),
            timeout: "5m".parse().expect("duration"),
            backoff_limit: 3,
            source: Default::default(),
        },
        stage_retry_base: Duration::from_secs(10),
    };
    stack.metadata.namespace = Some("bench".into());
    stack.metadata.uid = Some("uid".into());
    let seen = Seen::default();
    bench(
        "decide a new stack's pass (objects, stages, status)",
        budget,
        || {
            std::hint::black_box(
                decide(&stack, &seen, &options, Timestamp::now()).expect("decide"),
            );
        },
    );
    // A settled stack: everything applied, so the pass decides no writes.
    let mut settled = Seen::default();
    for (object, hash) in decide(&stack, &seen, &options, Timestamp::now())
        .expect("decide")
        .apply
    {
        settled
            .observed
            .applied
            .insert((object.kind().into(), object.name().into()), Some(hash));
    }
    bench("decide a settled stack's pass", budget, || {
        std::hint::black_box(decide(&stack, &settled, &options, Timestamp::now()).expect("decide"));
    });
}
