//! A step's traffic as every target sends it: how many requests, when, how many at
//! once, and the request itself with the id that ties its upstream attempts to it.

use super::scenario::{RequestSpec, Step};
use super::upstreams::REQUEST_ID;
use std::time::Duration;

/// When a step's requests go out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub count: usize,
    /// Open loop: request `i` is due at `i x interval` from the step's start. Closed
    /// loop (`None`): each client sends its next request when the previous one is done.
    pub interval: Option<Duration>,
    pub concurrency: usize,
}

impl Plan {
    pub fn of(step: &Step) -> Plan {
        let Some(repeat) = &step.repeat else {
            return Plan {
                count: 1,
                interval: None,
                concurrency: 1,
            };
        };
        let interval = repeat.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
        let count = match (repeat.count, repeat.duration, repeat.rate) {
            (Some(count), _, _) => count,
            (None, Some(duration), Some(rate)) => {
                ((duration.as_secs_f64() * rate).ceil() as usize).max(1)
            }
            _ => 1,
        };
        Plan {
            count,
            interval,
            concurrency: repeat
                .concurrency
                .unwrap_or(if repeat.rate.is_some() { 16 } else { 1 })
                .max(1),
        }
    }

    /// When request `i` is due, from the step's start (closed loop: at once).
    pub fn due(&self, i: usize) -> Duration {
        self.interval.map_or(Duration::ZERO, |d| {
            d.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
        })
    }
}

/// One request as the client sends it.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// Lower-case names, the request id last.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The client gives up this long after sending if no response has come.
    pub abort_after: Option<Duration>,
}

impl ClientRequest {
    pub fn new(spec: &RequestSpec, id: u64) -> ClientRequest {
        let mut headers: Vec<(String, String)> = spec
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        headers.push((REQUEST_ID.into(), id.to_string()));
        ClientRequest {
            id,
            method: spec.method.clone(),
            path: spec.path.clone(),
            host: spec.host.clone(),
            headers,
            body: spec.body.as_ref().map(|b| b.clone().into_bytes()),
            abort_after: spec.abort_after,
        }
    }
}
