//! Retry policies as istiod 1.28.0 builds them
//! (`pilot/pkg/networking/core/route/retry/retry.go`).
//!
//! The default policy is what every route gets without a VirtualService `retries`:
//! in-mesh calls with no VirtualService bound to `mesh`, gateway routes whose
//! VirtualService says nothing of retries, and Gateway API HTTPRoutes without `retry`.
//! Since 1.24 it names no retriable status code, so an application's 503 is not
//! retried (release note 50506).

use super::duration;
use super::plan::RetryPolicy;
use super::resources::HttpRetry;

/// The default policy's conditions (`defaultPolicy`).
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The default policy's retries (`defaultPolicy`).
pub const DEFAULT_RETRIES: u32 = 2;

/// `DefaultPolicy`: 2 retries on connection-level failures, no status codes, the
/// `previous_hosts` predicate, 5 host reselections, no per-try timeout.
pub fn default_policy() -> RetryPolicy {
    RetryPolicy {
        num_retries: DEFAULT_RETRIES,
        retry_on: DEFAULT_RETRY_ON.into(),
        retriable_status_codes: Vec::new(),
        per_try_timeout: None,
        previous_hosts: true,
        host_selection_retry_max_attempts: 5,
        backoff_base: None,
    }
}

/// `ConvertPolicy`: no `retries` gives the default; `attempts` 0 (or less) removes
/// the policy; otherwise the default with `attempts`, and with `retryOn` when given
/// (its numbers become retriable status codes, `retriable-status-codes` added), the
/// per-try timeout, the previous-hosts choice and the back-off.
pub fn convert_policy(retries: Option<&HttpRetry>) -> Result<Option<RetryPolicy>, String> {
    let mut out = default_policy();
    let Some(retries) = retries else {
        return Ok(Some(out));
    };
    if retries.attempts <= 0 {
        return Ok(None);
    }
    out.num_retries = u32::try_from(retries.attempts).unwrap_or(0);
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.is_empty()) {
        let (kinds, codes) = parse_retry_on(retry_on);
        out.retry_on = kinds;
        if !codes.is_empty() && !out.retry_on.contains("retriable-status-codes") {
            out.retry_on.push_str(",retriable-status-codes");
        }
        out.retriable_status_codes = codes;
    }
    if let Some(per_try) = &retries.per_try_timeout {
        out.per_try_timeout = Some(duration(per_try).map_err(|e| format!("perTryTimeout: {e}"))?);
    }
    if let Some(previous) = retries.retry_ignore_previous_hosts {
        out.previous_hosts = previous;
    }
    if let Some(backoff) = &retries.backoff {
        out.backoff_base = Some(duration(backoff).map_err(|e| format!("backoff: {e}"))?);
    }
    Ok(Some(out))
}

/// `parseRetryOn`: the parts that are HTTP status codes (100-599) become retriable
/// status codes, the others stay conditions, blanks dropped.
pub fn parse_retry_on(retry_on: &str) -> (String, Vec<u16>) {
    let mut kinds = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            Ok(_) => {}
            Err(_) => kinds.push(part),
        }
    }
    (kinds.join(","), codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: i32, retry_on: Option<&str>) -> HttpRetry {
        HttpRetry {
            attempts,
            retry_on: retry_on.map(str::to_owned),
            ..HttpRetry::default()
        }
    }

    #[test]
    fn without_retries_the_default_policy_retries_no_status() {
        let policy = convert_policy(None).expect("valid").expect("a policy");
        assert_eq!(policy.num_retries, 2);
        assert_eq!(policy.retry_on, DEFAULT_RETRY_ON);
        assert!(
            policy.retriable_status_codes.is_empty(),
            "no 503 since 1.24"
        );
        assert!(policy.previous_hosts);
        assert_eq!(policy.host_selection_retry_max_attempts, 5);
        assert_eq!(policy.per_try_timeout, None);
    }

    #[test]
    fn attempts_without_retry_on_keep_the_default_conditions() {
        let policy = convert_policy(Some(&retry(3, None)))
            .expect("valid")
            .expect("a policy");
        assert_eq!(policy.num_retries, 3);
        assert_eq!(policy.retry_on, DEFAULT_RETRY_ON);
        assert!(policy.retriable_status_codes.is_empty());
    }

    #[test]
    fn zero_attempts_remove_the_policy() {
        assert_eq!(convert_policy(Some(&retry(0, Some("5xx")))), Ok(None));
    }

    #[test]
    fn status_codes_in_retry_on_become_retriable_codes() {
        let policy = convert_policy(Some(&retry(2, Some("gateway-error, 503,,409"))))
            .expect("valid")
            .expect("a policy");
        assert_eq!(policy.retry_on, "gateway-error,retriable-status-codes");
        assert_eq!(policy.retriable_status_codes, [503, 409]);
        let explicit = convert_policy(Some(&retry(2, Some("retriable-status-codes,503"))))
            .expect("valid")
            .expect("a policy");
        assert_eq!(explicit.retry_on, "retriable-status-codes");
    }

    #[test]
    fn per_try_timeout_and_previous_hosts_are_honoured() {
        let mut r = retry(1, Some("5xx"));
        r.per_try_timeout = Some("250ms".into());
        r.retry_ignore_previous_hosts = Some(false);
        let policy = convert_policy(Some(&r)).expect("valid").expect("a policy");
        assert_eq!(
            policy.per_try_timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert!(!policy.previous_hosts);
        r.per_try_timeout = Some("soon".into());
        assert!(convert_policy(Some(&r)).is_err());
    }
}
