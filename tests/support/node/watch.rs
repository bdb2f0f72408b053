//! The kubelet's watch over a running Pod: processes, probes, volume
//! refreshes, restarts, and the status it reports.

use super::*;

impl Agent {
    /// Checks the Pod's processes and probes; refreshes its ConfigMap and
    /// Secret volumes as the kubelet does; reports status when it changed;
    /// restarts exited containers of `restartPolicy: Always` Pods. `true`
    /// once the Pod has finished.
    pub(super) async fn watch_pod(&self, pod: &Pod) -> anyhow::Result<bool> {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let restart_always = spec.restart_policy.as_deref().unwrap_or("Always") == "Always";
        let user = spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .unwrap_or(0);
        let (ip, netns, dir, started_at, passes) = {
            let mut s = self.state.lock().unwrap();
            let Some(run) = s.pods.get_mut(&name) else {
                return Ok(false);
            };
            run.passes += 1;
            (
                run.ip,
                run.netns.clone(),
                run.dir.clone(),
                run.started_at.clone(),
                run.passes,
            )
        };
        self.write_hosts(
            &PathBuf::from(format!("/etc/netns/{netns}")),
            &pod_hostname(pod),
            ip,
        );
        // The kubelet syncs volumes periodically, not at once.
        let volumes = if passes % 6 == 0 {
            let v = self.volumes(pod, &dir).await?;
            let _ = sh(&format!(
                "chown -R {user}:{user} {}",
                quote(&dir.join("volumes").display().to_string())
            ));
            v
        } else {
            spec.volumes
                .iter()
                .flatten()
                .map(|v| (v.name.clone(), self.volume_dir(v, &dir)))
                .collect()
        };
        let mut exits: Vec<(String, i32)> = Vec::new();
        {
            let mut s = self.state.lock().unwrap();
            if let Some(run) = s.pods.get_mut(&name) {
                for (c, child) in &mut run.children {
                    if let Ok(Some(status)) = child.try_wait() {
                        exits.push((c.clone(), status.code().unwrap_or(137)));
                    }
                }
            }
        }
        let mut statuses = Vec::new();
        let mut all_ready = true;
        for c in &spec.containers {
            let restarts = self
                .state
                .lock()
                .unwrap()
                .pods
                .get(&name)
                .and_then(|r| r.restarts.get(&c.name).copied())
                .unwrap_or(0);
            let exited = exits
                .iter()
                .find(|(n, _)| n == &c.name)
                .map(|(_, code)| *code);
            if let Some(code) = exited {
                all_ready = false;
                if restart_always {
                    // The kubelet's back-off, shortened.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let child = self.spawn(pod, c, &netns, &dir, &volumes, user).await?;
                    if let Some(run) = self.state.lock().unwrap().pods.get_mut(&name) {
                        run.children.retain(|(n, _)| n != &c.name);
                        run.children.push((c.name.clone(), child));
                        *run.restarts.entry(c.name.clone()).or_default() += 1;
                    }
                    statuses.push(json!({"name": c.name, "ready": false, "started": false,
                        "restartCount": restarts + 1, "image": c.image, "imageID": "",
                        "lastState": {"terminated": {"exitCode": code, "reason": "Error"}},
                        "state": {"running": {"startedAt": Timestamp::now().to_string()}}}));
                    continue;
                }
                statuses.push(
                    json!({"name": c.name, "ready": false, "restartCount": restarts,
                    "image": c.image, "imageID": "",
                    "state": {"terminated": {"exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "finishedAt": Timestamp::now().to_string()}}}),
                );
                continue;
            }
            let ready = probe(c, ip).await;
            all_ready &= ready;
            statuses.push(json!({"name": c.name, "ready": ready, "started": true,
                "restartCount": restarts, "image": c.image, "imageID": "",
                "state": {"running": {"startedAt": started_at}}}));
        }
        if !restart_always && exits.len() == spec.containers.len() {
            let failed = exits.iter().any(|(_, code)| *code != 0);
            let run = self.state.lock().unwrap().pods.remove(&name);
            if let Some(run) = run {
                stop_pod(run);
            }
            self.status(
                &name,
                json!({"phase": if failed { "Failed" } else { "Succeeded" },
                       "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": statuses}),
            )
            .await?;
            return Ok(true);
        }
        let ready = if all_ready { "True" } else { "False" };
        let status = json!({"phase": "Running", "hostIP": GATEWAY, "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}], "startTime": started_at,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started_at},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready}],
            "containerStatuses": statuses});
        let text = status.to_string();
        let changed = self
            .state
            .lock()
            .unwrap()
            .pods
            .get_mut(&name)
            .is_some_and(|r| {
                let changed = r.last_status != text;
                r.last_status = text;
                changed
            });
        if changed {
            self.status(&name, status).await?;
        }
        Ok(false)
    }
}
