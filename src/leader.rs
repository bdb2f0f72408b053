//! Leader election on a `coordination.k8s.io` Lease, so several replicas
//! of the operator are safe: only the holder reconciles, the others stand
//! by serving `/healthz` and `/metrics` and take over once the holder stops
//! renewing.
//!
//! As client-go's, expiry is judged by the follower's own clock (how long
//! the record has not changed while it watched), never by comparing its
//! clock with the holder's `renewTime`. The leader renews every retry
//! period and gives up leading when it could not renew for the renew
//! deadline, before a follower may take over; on shutdown it releases the
//! Lease so the next replica takes it at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the election runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The Lease's namespace (the operator's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its Pod name).
    pub identity: String,
    /// How long a Lease not renewed stays the holder's.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and a follower looks.
    pub retry_period: Duration,
}

/// Why the settings cannot work.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The deadline is not shorter than the lease: two leaders could act.
    #[error(
        "--leader-election-renew-deadline ({renew:?}) must be shorter than \
         --leader-election-lease-duration ({lease:?}), or a follower could take over while the \
         leader still acts"
    )]
    DeadlineNotShorter {
        /// The renew deadline.
        renew: Duration,
        /// The lease duration.
        lease: Duration,
    },
    /// The leader would renew less often than its deadline allows.
    #[error(
        "--leader-election-retry-period ({retry:?}) must be shorter than \
         --leader-election-renew-deadline ({renew:?})"
    )]
    RetryNotShorter {
        /// The retry period.
        retry: Duration,
        /// The renew deadline.
        renew: Duration,
    },
    /// Nothing names this replica or where the Lease lives.
    #[error("{0} is empty: set it (in a Pod, POD_NAME and POD_NAMESPACE from the downward API)")]
    Empty(&'static str),
}

impl Settings {
    /// The settings, checked.
    pub fn validated(self) -> Result<Self, SettingsError> {
        if self.identity.trim().is_empty() {
            return Err(SettingsError::Empty("--leader-election-identity"));
        }
        if self.namespace.trim().is_empty() {
            return Err(SettingsError::Empty("--leader-election-namespace"));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(SettingsError::DeadlineNotShorter {
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(SettingsError::RetryNotShorter {
                retry: self.retry_period,
                renew: self.renew_deadline,
            });
        }
        Ok(self)
    }
}

/// What a replica may do with the Lease as it reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Take it (free, released, expired) or renew it (ours).
    Take,
    /// Another replica holds it.
    Wait {
        /// Who holds it.
        holder: String,
    },
}

/// Whether `me` may take or renew the Lease: it is missing, released, its
/// own, or unchanged for longer than its duration (`unchanged_for`, by
/// this replica's clock).
pub fn step(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Step {
    let Some(spec) = spec else { return Step::Take };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return Step::Take;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    if unchanged_for >= duration {
        Step::Take
    } else {
        Step::Wait {
            holder: holder.to_owned(),
        }
    }
}

/// The Lease's spec once `me` holds it at `now`: the acquire time and the
/// transition count move only when the holder changes.
pub fn claimed(
    spec: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> LeaseSpec {
    let old = spec.cloned().unwrap_or_default();
    let ours = old.holder_identity.as_deref() == Some(me);
    let seconds = i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: if ours {
            old.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(match (ours, spec.is_some()) {
            (true, _) | (false, false) => old.lease_transitions.unwrap_or(0),
            (false, true) => old.lease_transitions.unwrap_or(0).saturating_add(1),
        }),
        ..old
    }
}

/// The Lease's spec once released: no holder, so anyone may take it now.
pub fn released(spec: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..spec.clone()
    }
}

/// What a replica compares to tell that the holder renewed.
fn record(spec: Option<&LeaseSpec>) -> Option<(Option<String>, Option<Timestamp>)> {
    spec.map(|s| {
        (
            s.holder_identity.clone(),
            s.renew_time.as_ref().map(|t| t.0),
        )
    })
}

/// How leading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The holder asked to stop renewing.
    Stopped,
    /// The Lease could not be renewed in time, or another replica took it.
    Lost(String),
}

/// A replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
}

impl Elector {
    /// An elector for `settings` (checked already).
    pub fn new(client: Client, settings: Settings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// Waits until this replica holds the Lease; `false` when `shutdown`
    /// came first.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        let me = &self.settings.identity;
        let mut seen = None;
        let mut since = Instant::now();
        let mut waiting_for = None;
        loop {
            match self.api.get_opt(&self.settings.name).await {
                Ok(lease) => {
                    let spec = lease.as_ref().and_then(|l| l.spec.as_ref());
                    let now_seen = record(spec);
                    if now_seen != seen {
                        seen = now_seen;
                        since = Instant::now();
                    }
                    match step(spec, me, since.elapsed()) {
                        Step::Take => match self.write(lease.clone(), spec.cloned()).await {
                            Ok(()) => {
                                tracing::info!(lease = %self.settings.name, identity = %me, "leading");
                                return true;
                            }
                            // Another replica was faster: look again.
                            Err(error) => tracing::debug!(%error, "could not take the lease"),
                        },
                        Step::Wait { holder } => {
                            if waiting_for.as_ref() != Some(&holder) {
                                tracing::info!(lease = %self.settings.name, %holder, "standing by: another replica leads");
                                waiting_for = Some(holder);
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %self.settings.name, "cannot read the lease")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
    }

    /// Renews the Lease until `until` is cancelled (the caller releases it
    /// once it stopped acting) or until it is lost: then `lost` is
    /// cancelled, the moment this replica must stop acting.
    pub async fn hold(&self, until: &CancellationToken, lost: &CancellationToken) -> Ended {
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = until.cancelled() => return Ended::Stopped,
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
            match self.renew().await {
                Ok(()) => renewed = Instant::now(),
                Err(Renewal::TakenBy(holder)) => {
                    lost.cancel();
                    return Ended::Lost(format!("replica {holder} holds the lease"));
                }
                Err(Renewal::Failed(error)) => {
                    tracing::warn!(%error, "cannot renew the lease");
                }
            }
            if renewed.elapsed() >= self.settings.renew_deadline {
                lost.cancel();
                return Ended::Lost(format!(
                    "the lease was not renewed for {:?} (the renew deadline)",
                    self.settings.renew_deadline
                ));
            }
        }
    }

    async fn renew(&self) -> Result<(), Renewal> {
        let lease = self.api.get_opt(&self.settings.name).await?;
        let spec = lease.as_ref().and_then(|l| l.spec.clone());
        let holder = spec.as_ref().and_then(|s| s.holder_identity.clone());
        if let Some(holder) = holder.filter(|h| !h.is_empty() && *h != self.settings.identity) {
            return Err(Renewal::TakenBy(holder));
        }
        Ok(self.write(lease, spec).await?)
    }

    /// Creates or replaces the Lease with this replica as holder; a
    /// replace carries the read resourceVersion, so two replicas never
    /// both win.
    async fn write(&self, lease: Option<Lease>, spec: Option<LeaseSpec>) -> kube::Result<()> {
        let spec = claimed(
            spec.as_ref(),
            &self.settings.identity,
            Timestamp::now(),
            self.settings.lease_duration,
        );
        match lease {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await?;
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await?;
            }
        }
        Ok(())
    }

    /// Gives the Lease up, if it is still ours, so a standby takes over at
    /// once.
    pub async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_ref() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
                return Ok(());
            }
            lease.spec = Some(released(spec, Timestamp::now()));
            self.api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %self.settings.name, "released the lease"),
            Err(error) => tracing::warn!(%error, "cannot release the lease; it expires by itself"),
        }
    }
}

enum Renewal {
    TakenBy(String),
    Failed(kube::Error),
}

impl From<kube::Error> for Renewal {
    fn from(e: kube::Error) -> Self {
        Self::Failed(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn held_by(holder: &str) -> LeaseSpec {
        claimed(None, holder, at(100), Duration::from_secs(15))
    }

    #[test]
    fn a_lease_is_taken_when_missing_released_ours_or_expired() {
        let me = "operator-a";
        assert_eq!(step(None, me, Duration::ZERO), Step::Take);
        let other = held_by("operator-b");
        assert_eq!(
            step(Some(&other), me, Duration::from_secs(14)),
            Step::Wait {
                holder: "operator-b".into()
            }
        );
        assert_eq!(step(Some(&other), me, Duration::from_secs(15)), Step::Take);
        assert_eq!(
            step(Some(&held_by(me)), me, Duration::ZERO),
            Step::Take,
            "ours: renew"
        );
        let free = released(&other, at(110));
        assert_eq!(step(Some(&free), me, Duration::ZERO), Step::Take);
        let mut blank = other.clone();
        blank.holder_identity = Some(String::new());
        assert_eq!(step(Some(&blank), me, Duration::ZERO), Step::Take);
    }

    #[test]
    fn claiming_counts_transitions_and_keeps_the_acquire_time_on_renewal() {
        let first = claimed(None, "a", at(100), Duration::from_secs(15));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        let renewed = claimed(Some(&first), "a", at(102), Duration::from_secs(15));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(102))));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claimed(Some(&renewed), "b", at(120), Duration::from_secs(15));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(120))));
        assert_eq!(taken.lease_transitions, Some(1));
        let free = released(&taken, at(121));
        assert_eq!(free.holder_identity, None);
        assert_eq!(free.lease_transitions, Some(1));
        assert_eq!(
            claimed(Some(&free), "a", at(122), Duration::from_secs(15)).lease_transitions,
            Some(2)
        );
    }

    #[test]
    fn settings_that_could_let_two_lead_are_refused_naming_the_flag() {
        let good = Settings {
            namespace: "sigstore-operator-system".into(),
            name: "sigstore-operator".into(),
            identity: "pod-a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert!(good.clone().validated().is_ok());
        let mut s = good.clone();
        s.renew_deadline = Duration::from_secs(15);
        let e = s.validated().unwrap_err().to_string();
        assert!(e.contains("--leader-election-renew-deadline"), "{e}");
        let mut s = good.clone();
        s.retry_period = Duration::from_secs(10);
        let e = s.validated().unwrap_err().to_string();
        assert!(e.contains("--leader-election-retry-period"), "{e}");
        let mut s = good;
        s.identity = " ".into();
        let e = s.validated().unwrap_err().to_string();
        assert!(e.contains("POD_NAME"), "{e}");
    }
}
