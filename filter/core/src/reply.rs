//! The filter's local replies: status, reason and a small JSON body.
//!
//! Every local reply carries `content-type: application/json`, the header
//! `x-c4-reason` and a body `{"error": "<reason>", ...}`, so clients and dashboards
//! can tell the filter's answers from the services'.

use crate::config::Config;
use crate::path::PathError;
use crate::routes::RouteId;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownHost,
    BadPath(PathError),
    NoRoute,
    MethodNotAllowed,
    CircuitOpen { retry_after_s: u64 },
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::UnknownHost => "unknown_host",
            Reason::BadPath(_) => "bad_path",
            Reason::NoRoute => "no_route",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::CircuitOpen { .. } => "circuit_open",
        }
    }

    pub fn status(&self) -> u32 {
        match self {
            Reason::UnknownHost | Reason::NoRoute => 404,
            Reason::BadPath(_) => 400,
            Reason::MethodNotAllowed => 405,
            Reason::CircuitOpen { .. } => 503,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReply {
    pub reason: Reason,
    pub route: Option<RouteId>,
}

impl LocalReply {
    pub fn status(&self) -> u32 {
        self.reason.status()
    }

    /// Response headers besides the status: content type, reason, and `allow` or
    /// `retry-after` where they apply.
    pub fn headers(&self, config: &Config) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("x-c4-reason", self.reason.as_str().to_owned()),
        ];
        match self.reason {
            Reason::MethodNotAllowed => {
                if let Some(methods) = self.route_of(config).and_then(|r| r.methods.as_ref()) {
                    headers.push(("allow", methods.allow_header.clone()));
                }
            }
            Reason::CircuitOpen { retry_after_s } => {
                headers.push(("retry-after", retry_after_s.to_string()));
            }
            _ => {}
        }
        headers
    }

    pub fn body(&self, config: &Config) -> String {
        let mut body = format!("{{\"error\":\"{}\"", self.reason.as_str());
        if let Reason::BadPath(why) = self.reason {
            let _ = write!(body, ",\"detail\":\"{}\"", json_escape(why.as_str()));
        }
        if let Some(route) = self.route_of(config) {
            // Route names are letters, digits, '-' and '_': nothing to escape.
            let _ = write!(body, ",\"route\":\"{}\"", route.name);
            if let (Reason::MethodNotAllowed, Some(methods)) = (self.reason, &route.methods) {
                let list: Vec<String> = methods.list.iter().map(|m| format!("\"{m}\"")).collect();
                let _ = write!(body, ",\"allow\":[{}]", list.join(","));
            }
        }
        if let Reason::CircuitOpen { retry_after_s } = self.reason {
            let _ = write!(body, ",\"retry_after\":{retry_after_s}");
        }
        body.push('}');
        body
    }

    fn route_of<'c>(&self, config: &'c Config) -> Option<&'c crate::config::Route> {
        self.route.and_then(|id| config.routes.get(id))
    }
}

fn json_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
