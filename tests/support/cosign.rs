//! cosign as a signer with a service-account identity, run from one work
//! directory that is its HOME and TUF cache.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{authentication::v1::TokenRequest, core::v1::ServiceAccount};
use kube::{Api, Client, api::PostParams};
use serde_json::json;

use super::servers::built;

/// Where cosign signs: Fulcio and Rekor base URLs and the TSA's
/// timestamping endpoint.
pub struct Services {
    pub fulcio: String,
    pub rekor: String,
    pub timestamp: String,
}

pub struct Cosign {
    /// The cosign build: `cosign` (2.x) or `cosign3`.
    pub program: &'static str,
    pub work: PathBuf,
    /// The identity token's file.
    pub token: PathBuf,
    /// The certificate identity verification expects.
    pub identity: String,
    /// The certificate's OIDC issuer verification expects.
    pub issuer: String,
}

impl Cosign {
    /// `token` as the identity of `identity` at `issuer`.
    pub fn with_token(work: PathBuf, token: &str, identity: String, issuer: String) -> Self {
        std::fs::create_dir_all(&work).expect("cosign work dir");
        let path = work.join("token");
        std::fs::write(&path, token).expect("write token");
        Self {
            program: "cosign",
            work,
            token: path,
            identity,
            issuer,
        }
    }

    /// The token in file `token` (as `hack/stack-up.sh` exports it).
    pub fn with_token_file(work: PathBuf, token: &Path, identity: String, issuer: String) -> Self {
        std::fs::create_dir_all(&work).expect("cosign work dir");
        Self {
            program: "cosign",
            work,
            token: token.to_owned(),
            identity,
            issuer,
        }
    }

    /// ServiceAccount `signer` in `ns` and a ten-minute token for it with
    /// audience `sigstore`, the identity Fulcio certifies.
    pub async fn signer(client: &Client, ns: &str, work: PathBuf, issuer: &str) -> Self {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "signer"}})).unwrap();
        accounts.create(&PostParams::default(), &sa).await.unwrap();
        let request: TokenRequest = serde_json::from_value(
            json!({"spec": {"audiences": ["sigstore"], "expirationSeconds": 600}}),
        )
        .unwrap();
        let token: TokenRequest = accounts
            .create_subresource("token", "signer", &PostParams::default(), &request)
            .await
            .unwrap();
        Self::with_token(
            work,
            &token.status.unwrap().token,
            format!("https://kubernetes.io/namespaces/{ns}/serviceaccounts/signer"),
            issuer.to_owned(),
        )
    }

    /// The same signer with cosign 3, which signs through a signing config.
    pub fn v3(self) -> Self {
        Self {
            program: "cosign3",
            ..self
        }
    }

    /// Runs cosign with `args`: whether it succeeded, and its output.
    pub async fn run(&self, args: &[String]) -> (bool, String) {
        let env = [
            ("HOME", self.work.display().to_string()),
            ("TUF_ROOT", self.work.join("tuf").display().to_string()),
        ];
        super::node::run(&built(self.program), args, &env).await
    }

    /// Signs `blob` against `services`, trusting `root` (trusted_root.json);
    /// returns the bundle's path.
    pub async fn sign(&self, root: &Path, services: &Services, blob: &Path) -> PathBuf {
        let bundle = blob.with_extension("sigstore.json");
        let (ok, log) = self
            .run(&[
                "sign-blob".into(),
                "--yes".into(),
                "--new-bundle-format".into(),
                format!("--trusted-root={}", root.display()),
                format!("--fulcio-url={}", services.fulcio),
                format!("--rekor-url={}", services.rekor),
                format!("--timestamp-server-url={}", services.timestamp),
                format!("--identity-token={}", self.token.display()),
                format!("--bundle={}", bundle.display()),
                blob.display().to_string(),
            ])
            .await;
        assert!(ok, "cosign sign-blob failed:\n{log}");
        bundle
    }

    /// cosign 3's way, as the README shows it: `sign-blob` with only the
    /// signing config and the trusted root, no service URL flags; returns
    /// the bundle's path.
    pub async fn sign_with_config(
        &self,
        signing_config: &Path,
        root: &Path,
        blob: &Path,
    ) -> (bool, String, PathBuf) {
        let bundle = blob.with_extension("sigstore.json");
        let (ok, log) = self
            .run(&[
                "sign-blob".into(),
                "--yes".into(),
                format!("--signing-config={}", signing_config.display()),
                format!("--trusted-root={}", root.display()),
                format!("--identity-token={}", self.token.display()),
                format!("--bundle={}", bundle.display()),
                blob.display().to_string(),
            ])
            .await;
        (ok, log, bundle)
    }

    /// `initialize` from the TUF mirror `url`, trusting `root` (root.json).
    pub async fn initialize(&self, url: &str, root: &Path) {
        let (ok, log) = self
            .run(&[
                "initialize".into(),
                format!("--mirror={url}"),
                format!("--root={}", root.display()),
            ])
            .await;
        assert!(ok, "cosign initialize failed:\n{log}");
    }

    /// `verify-blob` for this identity, trusting `root` (trusted_root.json),
    /// or without it what cosign got from TUF.
    pub async fn verify(&self, root: Option<&Path>, blob: &Path, bundle: &Path) -> (bool, String) {
        self.verify_as(&self.identity, root, blob, bundle).await
    }

    /// `verify-blob` of a bundle signed by `identity`.
    pub async fn verify_as(
        &self,
        identity: &str,
        root: Option<&Path>,
        blob: &Path,
        bundle: &Path,
    ) -> (bool, String) {
        let mut args = vec!["verify-blob".to_owned()];
        args.extend(root.map(|r| format!("--trusted-root={}", r.display())));
        args.extend([
            format!("--bundle={}", bundle.display()),
            format!("--certificate-identity={identity}"),
            format!("--certificate-oidc-issuer={}", self.issuer),
            blob.display().to_string(),
        ]);
        self.run(&args).await
    }
}
