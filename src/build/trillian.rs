//! Trillian: the embedded MariaDB (unless an external database is given),
//! the log server with an init container that creates the schema, and the
//! log signer.

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, PersistentVolumeClaim, PodSpec, Secret},
};

use super::{
    Inputs, Object,
    meta::{self, Owner},
    workload::{
        annotate_deployment, config_map_volume, container, deployment, env, env_secret, mount,
        requests, scratch, served, service,
    },
};
use crate::{
    api::{DatabaseMode, SigstoreStackSpec},
    names::{TRILLIAN_DB, TRILLIAN_LOG_SERVER, TRILLIAN_LOG_SIGNER, TRILLIAN_SCHEMA},
};

/// Trillian's MySQL schema, idempotent (safe to apply on every start).
pub const SCHEMA: &str = include_str!("../trillian/schema.sql");
/// The log server's gRPC port, used by Rekor, ct_server and createtree.
pub const GRPC_PORT: i32 = 8090;
/// The HTTP (metrics) port of the log server and signer.
pub const HTTP_PORT: i32 = 8091;
/// MySQL's port.
pub const MYSQL_PORT: i32 = 3306;

/// Whether any enabled log needs Trillian.
pub fn needed(spec: &SigstoreStackSpec) -> bool {
    crate::build::component::Component::Trillian.wanted(spec)
}

/// How Trillian reaches its database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub name: String,
    /// Secret with keys `username` and `password`.
    pub credentials: String,
}

/// The database of `inputs`' stack.
pub fn database(owner: &Owner, spec: &SigstoreStackSpec) -> Database {
    match (
        &spec.trillian.database.mode,
        &spec.trillian.database.external,
    ) {
        (DatabaseMode::External, Some(ext)) => Database {
            host: ext.host.clone(),
            port: ext.port,
            name: ext.database.clone(),
            credentials: ext.credentials_secret.clone(),
        },
        _ => Database {
            host: owner.host_of(TRILLIAN_DB),
            port: 3306,
            name: "trillian".into(),
            credentials: owner.name_of(TRILLIAN_DB),
        },
    }
}

/// Whether the stack runs its own database.
pub fn embedded(spec: &SigstoreStackSpec) -> bool {
    spec.trillian.database.mode == DatabaseMode::Embedded
}

/// The Secret of the embedded database's credentials, made once with
/// fresh passwords and never rewritten.
pub fn database_secret(owner: &Owner, password: &str, root_password: &str) -> Secret {
    let data = [
        ("username", "trillian"),
        ("password", password),
        ("root-password", root_password),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: owner.meta(owner.name_of(TRILLIAN_DB), TRILLIAN_DB),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The embedded database's claim, when the spec asks for one. Created
/// once and never changed: most of a claim's spec is immutable.
pub fn database_claim(owner: &Owner, spec: &SigstoreStackSpec) -> Option<PersistentVolumeClaim> {
    let storage = spec.trillian.database.storage.as_ref()?;
    (needed(spec) && embedded(spec)).then(|| super::workload::claim(owner, TRILLIAN_DB, storage))
}

/// The log server's gRPC address, `host:port`.
pub fn address(owner: &Owner) -> String {
    format!("{}:{GRPC_PORT}", owner.host_of(TRILLIAN_LOG_SERVER))
}

/// Trillian's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let db = database(owner, inputs.spec);
    let mut out = Vec::new();
    if embedded(inputs.spec) {
        out.extend(database_objects(inputs, &db));
    }
    out.push(Object::ConfigMap(ConfigMap {
        metadata: owner.meta(owner.name_of(TRILLIAN_SCHEMA), TRILLIAN_LOG_SERVER),
        data: Some([("schema.sql".to_owned(), SCHEMA.to_owned())].into()),
        ..ConfigMap::default()
    }));
    out.push(Object::Deployment(log_server(inputs, &db)));
    out.push(Object::Service(service(
        owner,
        TRILLIAN_LOG_SERVER,
        &[
            ("grpc", GRPC_PORT, GRPC_PORT),
            ("http", HTTP_PORT, HTTP_PORT),
        ],
    )));
    out.push(Object::Deployment(log_signer(inputs, &db)));
    out
}

fn database_objects(inputs: &Inputs<'_>, db: &Database) -> Vec<Object> {
    let owner = &inputs.owner;
    let mut c = container(
        "mariadb",
        &inputs.images.database,
        vec!["--skip-log-bin".into()],
        &[("mysql", MYSQL_PORT)],
    );
    c.env = Some(vec![
        env("MARIADB_DATABASE", &db.name),
        env_secret("MARIADB_USER", &db.credentials, "username"),
        env_secret("MARIADB_PASSWORD", &db.credentials, "password"),
        env_secret("MARIADB_ROOT_PASSWORD", &db.credentials, "root-password"),
    ]);
    c.volume_mounts = Some(vec![
        mount("data", "/var/lib/mysql", true),
        mount("run", "/run/mysqld", true),
        mount("tmp", "/tmp", true),
    ]);
    c.resources = Some(requests("50m", "256Mi"));
    let data = super::workload::storage_volume(
        "data",
        owner,
        TRILLIAN_DB,
        inputs.spec.trillian.database.storage.as_ref(),
    );
    let pod = PodSpec {
        containers: vec![c],
        volumes: Some(vec![data, scratch("run"), scratch("tmp")]),
        ..PodSpec::default()
    };
    let ports = [("mysql", MYSQL_PORT, MYSQL_PORT)];
    served(owner, TRILLIAN_DB, meta::DB_USER, pod, &ports).into()
}

/// `--mysql_uri` from env `DB_USER`/`DB_PASSWORD`, which the kubelet
/// expands, so no credential sits in the Deployment.
fn mysql_args(db: &Database) -> Vec<String> {
    vec![
        "--storage_system=mysql".into(),
        "--quota_system=mysql".into(),
        format!(
            "--mysql_uri=$(DB_USER):$(DB_PASSWORD)@tcp({}:{})/{}",
            db.host, db.port, db.name
        ),
        format!("--rpc_endpoint=0.0.0.0:{GRPC_PORT}"),
        format!("--http_endpoint=0.0.0.0:{HTTP_PORT}"),
    ]
}

fn credentials(db: &Database) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    vec![
        env_secret("DB_USER", &db.credentials, "username"),
        env_secret("DB_PASSWORD", &db.credentials, "password"),
    ]
}

fn log_server(inputs: &Inputs<'_>, db: &Database) -> k8s_openapi::api::apps::v1::Deployment {
    let owner = &inputs.owner;
    let mut server = container(
        "log-server",
        &inputs.images.log_server,
        mysql_args(db),
        &[("grpc", GRPC_PORT), ("http", HTTP_PORT)],
    );
    server.env = Some(credentials(db));
    // Applies the schema before the server starts, on every start: the
    // statements are idempotent, and an external database gets it too.
    let mut schema = container("schema", &inputs.images.database, Vec::new(), &[]);
    schema.command = Some(vec!["sh".into(), "-c".into(), SCHEMA_SCRIPT.into()]);
    schema.env = Some(vec![
        env("DB_HOST", &db.host),
        env("DB_PORT", &db.port.to_string()),
        env("DB_NAME", &db.name),
        env_secret("DB_USER", &db.credentials, "username"),
        env_secret("MYSQL_PWD", &db.credentials, "password"),
    ]);
    schema.volume_mounts = Some(vec![mount("schema", "/schema", false)]);
    let pod = PodSpec {
        init_containers: Some(vec![schema]),
        containers: vec![server],
        volumes: Some(vec![config_map_volume(
            "schema",
            &owner.name_of(TRILLIAN_SCHEMA),
            &[("schema.sql", "schema.sql")],
        )]),
        ..PodSpec::default()
    };
    let mut d = deployment(owner, TRILLIAN_LOG_SERVER, meta::NONROOT_USER, pod);
    // A lost tree restarts the server, whose init container then gives a
    // database that came back empty its schema again.
    if !inputs.lost_trees.is_empty() {
        let ids: Vec<String> = inputs.lost_trees.iter().map(i64::to_string).collect();
        annotate_deployment(&mut d, meta::LOST_TREES_ANNOTATION, ids.join(" "));
    }
    d
}

/// Waits for the database, then applies the schema. The password travels
/// in `MYSQL_PWD`, never on a command line.
const SCHEMA_SCRIPT: &str = "until mariadb --host=\"$DB_HOST\" --port=\"$DB_PORT\" \
     --user=\"$DB_USER\" \"$DB_NAME\" < /schema/schema.sql; do \
     echo 'waiting for the database'; sleep 2; done";

fn log_signer(inputs: &Inputs<'_>, db: &Database) -> k8s_openapi::api::apps::v1::Deployment {
    let mut args = mysql_args(db);
    // One signer per stack: it needs no election.
    args.extend(["--force_master".into(), "--sequencer_interval=100ms".into()]);
    let mut signer = container(
        "log-signer",
        &inputs.images.log_signer,
        args,
        &[("http", HTTP_PORT)],
    );
    signer.env = Some(credentials(db));
    let pod = PodSpec {
        containers: vec![signer],
        ..PodSpec::default()
    };
    deployment(&inputs.owner, TRILLIAN_LOG_SIGNER, meta::NONROOT_USER, pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{ExternalDatabase, SigstoreStackSpec},
        build::tests::inputs,
    };

    fn deployment_named<'a>(
        objects: &'a [Object],
        name: &str,
    ) -> &'a k8s_openapi::api::apps::v1::Deployment {
        objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no Deployment {name}"))
    }

    #[test]
    fn log_server_reads_credentials_from_the_secret() {
        let spec = SigstoreStackSpec::default();
        let objects = objects(&inputs(&spec));
        let d = deployment_named(&objects, "demo-trillian-log-server");
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let args = pod.containers[0].args.as_ref().unwrap();
        assert!(args.contains(
            &"--mysql_uri=$(DB_USER):$(DB_PASSWORD)@tcp(demo-trillian-db.ns1.svc:3306)/trillian"
                .to_owned()
        ));
        let json = serde_json::to_string(d).unwrap();
        assert!(
            !json.contains("root-password"),
            "the server never sees root"
        );
        assert_eq!(pod.init_containers.as_ref().unwrap()[0].name, "schema");
    }

    #[test]
    fn external_database_runs_no_mariadb() {
        let mut spec = SigstoreStackSpec::default();
        spec.trillian.database.mode = DatabaseMode::External;
        spec.trillian.database.external = Some(ExternalDatabase {
            host: "mysql.example".into(),
            port: 3307,
            database: "tr".into(),
            credentials_secret: "mine".into(),
        });
        let objects = objects(&inputs(&spec));
        assert!(objects.iter().all(|o| o.name() != "demo-trillian-db"));
        let d = deployment_named(&objects, "demo-trillian-log-signer");
        let json = serde_json::to_string(d).unwrap();
        assert!(json.contains("tcp(mysql.example:3307)/tr"), "{json}");
        assert!(json.contains("\"name\":\"mine\""), "{json}");
    }

    #[test]
    fn an_external_database_schema_client_runs_the_named_image() {
        let mut spec = SigstoreStackSpec::default();
        spec.trillian.database.mode = DatabaseMode::External;
        spec.trillian.database.image = Some("mirror.example/library/mariadb:11.4".into());
        spec.trillian.database.external = Some(ExternalDatabase {
            host: "mysql.example".into(),
            port: 3306,
            database: "trillian".into(),
            credentials_secret: "mine".into(),
        });
        let objects = objects(&inputs(&spec));
        let d = deployment_named(&objects, "demo-trillian-log-server");
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "schema");
        assert_eq!(
            init.image.as_deref(),
            Some("mirror.example/library/mariadb:11.4")
        );
    }

    #[test]
    fn storage_puts_the_database_on_a_claim() {
        let mut spec = SigstoreStackSpec::default();
        assert!(database_claim(&crate::build::tests::owner(), &spec).is_none());
        spec.trillian.database.storage = Some(crate::api::DatabaseStorage {
            size: "2Gi".into(),
            storage_class_name: Some("fast".into()),
        });
        let claim = database_claim(&crate::build::tests::owner(), &spec).unwrap();
        let json = serde_json::to_value(&claim).unwrap();
        assert_eq!(json["spec"]["resources"]["requests"]["storage"], "2Gi");
        assert_eq!(json["spec"]["storageClassName"], "fast");
        let objects = objects(&inputs(&spec));
        let db = deployment_named(&objects, "demo-trillian-db");
        let volumes = &serde_json::to_value(db).unwrap()["spec"]["template"]["spec"]["volumes"];
        assert_eq!(
            volumes[0]["persistentVolumeClaim"]["claimName"],
            "demo-trillian-db"
        );
    }

    #[test]
    fn schema_is_idempotent() {
        let code: String = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let statements: Vec<&str> = code
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(statements.len(), 7, "one CREATE TABLE per Trillian table");
        for statement in statements {
            assert!(
                statement.starts_with("CREATE TABLE IF NOT EXISTS"),
                "not idempotent: {statement}"
            );
        }
    }
}
