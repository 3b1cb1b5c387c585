//! Simulated upstreams (H7): the hosts of each service, answering as their fault
//! profile says at the moment an attempt arrives, and recording every attempt.
//!
//! The simulator is pure: it is handed the scenario time of each attempt. The `wasm`
//! target calls it from the emulated router in virtual time; the `envoy` target calls
//! it from real HTTP servers on loopback with the wall time since the scenario began.
//! Either way a scenario's faults mean the same thing, and the attempt records are what
//! expectations on attempts, services and hosts are checked against.

use super::rng::Rng;
use super::scenario::{FaultChange, Latency, Profile};
use std::time::Duration;

/// The header the conformance client tags each request with, so that attempts can be
/// counted per request on every target.
pub const REQUEST_ID: &str = "x-conformance-request";

/// What a host does with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Respond {
        status: u16,
        latency: Duration,
    },
    /// Closes the connection before answering.
    Reset {
        latency: Duration,
    },
    /// Never answers.
    Hang,
}

/// One attempt as a host received it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: Duration,
    pub service: String,
    pub host: usize,
    /// The conformance request it belongs to, from [`REQUEST_ID`].
    pub request: Option<u64>,
    /// The request headers as received (lower-case names).
    pub headers: Vec<(String, String)>,
    pub answer: Answer,
}

impl AttemptRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        c4mesh_mesh::client::header(&self.headers, name)
    }
}

/// A host's state: the change it is answering under and how many attempts it has
/// answered under it (for status sequences).
#[derive(Debug, Clone, Default)]
struct HostState {
    change: Option<usize>,
    answered: usize,
}

/// Every host of every service.
#[derive(Debug)]
pub struct Upstreams {
    services: Vec<String>,
    hosts: usize,
    changes: Vec<FaultChange>,
    state: Vec<Vec<HostState>>,
    rng: Rng,
    records: Vec<AttemptRecord>,
}

impl Upstreams {
    /// `hosts` hosts for each service, answering 200 until `changes` say otherwise.
    pub fn new(services: &[String], hosts: usize, changes: &[FaultChange], seed: u64) -> Upstreams {
        let mut changes = changes.to_vec();
        // Stable: changes at the same time apply in file order.
        changes.sort_by_key(|c| c.at);
        Upstreams {
            services: services.to_vec(),
            hosts,
            changes,
            state: vec![vec![HostState::default(); hosts]; services.len()],
            rng: Rng::new(seed ^ 0x005E_ED0F_0057),
            records: Vec::new(),
        }
    }

    pub fn services(&self) -> &[String] {
        &self.services
    }

    pub fn hosts(&self) -> usize {
        self.hosts
    }

    pub fn service_index(&self, service: &str) -> Option<usize> {
        self.services.iter().position(|s| s == service)
    }

    /// The change a host answers under at `now`: the last one in time that names it.
    fn change_for(&self, service: &str, host: usize, now: Duration) -> Option<usize> {
        self.changes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.at <= now && c.service == service && c.host.is_none_or(|h| h == host)
            })
            .map(|(i, _)| i)
            .next_back()
    }

    /// Whether a host is down for the whole scenario (its connections refused).
    pub fn is_down(&self, service: usize, host: usize) -> bool {
        let Some(name) = self.services.get(service) else {
            return false;
        };
        self.changes
            .iter()
            .any(|c| c.profile.down && &c.service == name && c.host.is_none_or(|h| h == host))
    }

    /// Host `host` of `service` receives an attempt at `now`: decide and record the
    /// answer.
    pub fn attempt(
        &mut self,
        service: usize,
        host: usize,
        now: Duration,
        headers: Vec<(String, String)>,
    ) -> Answer {
        let Some(name) = self.services.get(service).cloned() else {
            return Answer::Respond {
                status: 503,
                latency: Duration::ZERO,
            };
        };
        let change = self.change_for(&name, host, now);
        let answered = match self.state.get_mut(service).and_then(|s| s.get_mut(host)) {
            Some(state) => {
                if state.change != change {
                    *state = HostState {
                        change,
                        answered: 0,
                    };
                }
                state.answered += 1;
                state.answered - 1
            }
            None => 0,
        };
        let default = Profile::default();
        let profile = change
            .map_or(&default, |i| &self.changes[i].profile)
            .clone();
        let answer = self.decide(&profile, answered);
        let request = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(REQUEST_ID))
            .and_then(|(_, v)| v.parse().ok());
        self.records.push(AttemptRecord {
            at: now,
            service: name,
            host,
            request,
            headers,
            answer,
        });
        answer
    }

    fn decide(&mut self, profile: &Profile, answered: usize) -> Answer {
        let latency = match profile.latency {
            None => Duration::ZERO,
            Some(Latency::Fixed(d)) => d,
            Some(Latency::Uniform { min, max }) => {
                let span = u64::try_from((max - min).as_micros()).unwrap_or(u64::MAX);
                min + Duration::from_micros(self.rng.below(span.saturating_add(1)))
            }
        };
        if profile.hang {
            return Answer::Hang;
        }
        if profile.reset {
            return Answer::Reset { latency };
        }
        let status = if let Some(statuses) = &profile.statuses {
            statuses
                .get(answered)
                .or(statuses.last())
                .copied()
                .unwrap_or(200)
        } else if let Some(rate) = profile.error_rate {
            if self.rng.unit() < rate {
                profile.error_status.unwrap_or(503)
            } else {
                200
            }
        } else {
            profile.status.unwrap_or(200)
        };
        Answer::Respond { status, latency }
    }

    /// Every attempt so far, in arrival order.
    pub fn records(&self) -> &[AttemptRecord] {
        &self.records
    }

    /// The body a host answers with: which service and host it is.
    pub fn body(service: &str, host: usize) -> String {
        serde_json::json!({"service": service, "host": host}).to_string()
    }
}

/// The response header naming the host that answered (`service/index`).
pub const ANSWERED_BY: &str = "x-upstream-host";

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: u64, host: Option<usize>, profile: Profile) -> FaultChange {
        FaultChange {
            at: Duration::from_millis(at),
            service: "svc".into(),
            host,
            profile,
        }
    }

    fn status_of(answer: Answer) -> u16 {
        match answer {
            Answer::Respond { status, .. } => status,
            _ => 0,
        }
    }

    #[test]
    fn profiles_change_over_time_and_per_host() {
        let changes = [
            change(
                1000,
                None,
                Profile {
                    status: Some(503),
                    ..Profile::default()
                },
            ),
            change(
                2000,
                Some(1),
                Profile {
                    status: Some(200),
                    ..Profile::default()
                },
            ),
        ];
        let mut up = Upstreams::new(&["svc".into()], 2, &changes, 1);
        let at = |ms| Duration::from_millis(ms);
        assert_eq!(status_of(up.attempt(0, 0, at(0), vec![])), 200);
        assert_eq!(status_of(up.attempt(0, 1, at(1500), vec![])), 503);
        assert_eq!(status_of(up.attempt(0, 0, at(2500), vec![])), 503);
        assert_eq!(status_of(up.attempt(0, 1, at(2500), vec![])), 200);
        assert_eq!(up.records().len(), 4);
    }

    #[test]
    fn sequences_restart_with_each_change_and_repeat_their_last_status() {
        let seq = Profile {
            statuses: Some(vec![503, 200]),
            ..Profile::default()
        };
        let changes = [change(0, None, seq.clone()), change(1000, None, seq)];
        let mut up = Upstreams::new(&["svc".into()], 1, &changes, 1);
        let at = |ms| Duration::from_millis(ms);
        let first: Vec<u16> = (0..3)
            .map(|_| status_of(up.attempt(0, 0, at(10), vec![])))
            .collect();
        assert_eq!(first, [503, 200, 200]);
        assert_eq!(status_of(up.attempt(0, 0, at(1000), vec![])), 503);
    }

    #[test]
    fn error_rates_are_seeded_and_resets_and_hangs_are_answers() {
        let rate = Profile {
            error_rate: Some(0.3),
            ..Profile::default()
        };
        let run = |seed| {
            let mut up = Upstreams::new(&["svc".into()], 1, &[change(0, None, rate.clone())], seed);
            (0..1000)
                .map(|_| status_of(up.attempt(0, 0, Duration::ZERO, vec![])))
                .collect::<Vec<_>>()
        };
        let errors = run(9).iter().filter(|s| **s == 503).count();
        assert!((250..350).contains(&errors), "{errors}");
        assert_eq!(run(9), run(9));
        let changes = [
            change(
                0,
                Some(0),
                Profile {
                    reset: true,
                    ..Profile::default()
                },
            ),
            change(
                0,
                Some(1),
                Profile {
                    hang: true,
                    ..Profile::default()
                },
            ),
        ];
        let mut up = Upstreams::new(&["svc".into()], 2, &changes, 1);
        assert_eq!(
            up.attempt(0, 0, Duration::ZERO, vec![]),
            Answer::Reset {
                latency: Duration::ZERO
            }
        );
        assert_eq!(up.attempt(0, 1, Duration::ZERO, vec![]), Answer::Hang);
    }

    #[test]
    fn attempts_are_recorded_with_their_request() {
        let mut up = Upstreams::new(&["svc".into()], 1, &[], 1);
        up.attempt(0, 0, Duration::ZERO, vec![(REQUEST_ID.into(), "17".into())]);
        assert_eq!(up.records()[0].request, Some(17));
        assert_eq!(up.records()[0].header("X-Conformance-Request"), Some("17"));
    }
}
