//! Trillian's part of the spec: its database (embedded or external) and
//! its workloads.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PodSettings, WorkloadSpec};

/// Where Trillian keeps its trees and which images run it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrillianSpec {
    /// The database Trillian stores its trees in.
    #[serde(default)]
    pub database: TrillianDatabaseSpec,
    /// The Trillian log server.
    #[serde(default)]
    pub log_server: WorkloadSpec,
    /// The Trillian log signer, which integrates queued entries into the tree.
    #[serde(default)]
    pub log_signer: WorkloadSpec,
}

/// Trillian's database: one the operator runs for this stack, or one that
/// already exists.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("self.mode == 'External' ? has(self.external) : !has(self.external)").message("external is required when mode is External, and not allowed otherwise").field_path(".external"))]
#[x_kube(validation = Rule::new("self.mode == 'Embedded' || !has(self.storage)").message("storage applies only to the Embedded database").field_path(".storage"))]
#[serde(rename_all = "camelCase")]
pub struct TrillianDatabaseSpec {
    /// `Embedded` runs a MariaDB for this stack with Trillian's schema;
    /// `External` uses the database described in `external`.
    #[serde(default)]
    pub mode: DatabaseMode,
    /// Image of the embedded database, overriding the pinned default. With
    /// an `External` database it runs only the schema client (`mysql`) in
    /// the log server's init container, so a mirror-only cluster can name
    /// its copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The existing MySQL-compatible database, when `mode` is `External`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
    /// Keep the embedded database on a PersistentVolumeClaim, so the trees
    /// survive the database Pod being replaced. Without it the data lives
    /// in an emptyDir and goes with the Pod; the operator then replaces the
    /// lost trees (same keys; what was logged before can no longer be looked
    /// up). Read when the claim is created; an existing claim is never
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<DatabaseStorage>,
    /// Scheduling and resources of the embedded database's Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

/// A PersistentVolumeClaim the stack owns (for the embedded database or a
/// log's tiles).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStorage {
    /// Requested size, a Kubernetes quantity such as `1Gi`.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$')").message("must be a quantity such as 1Gi or 500Mi"))]
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// StorageClass of the claim; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// How Trillian's database is provided.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseMode {
    /// The operator runs a MariaDB for this stack.
    #[default]
    Embedded,
    /// A database the user runs; the operator only connects to it.
    External,
}

/// A MySQL-compatible database that already holds (or may be given)
/// Trillian's schema.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Host name or IP address of the database server.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$')").message("must be a host name or IP address"))]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port of the database server.
    #[serde(default = "default_mysql_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Name of the database that holds Trillian's tables.
    #[serde(default = "default_database_name")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_$]+$')").message("must be a MySQL database name: letters, digits, '_' or '$'"))]
    #[schemars(length(min = 1, max = 64))]
    pub database: String,
    /// Name of a Secret in the stack's namespace with keys `username` and
    /// `password`. The operator only reads it.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("must be a Secret name: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

fn default_mysql_port() -> u16 {
    3306
}

fn default_database_name() -> String {
    "trillian".into()
}
