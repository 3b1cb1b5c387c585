//! One request at a time from synchronous code: `c4mesh check`'s request through the
//! NLB and the conformance `url` target. A current-thread runtime of its own drives
//! one kept-alive connection, reopened when the server closed it.

use super::connection::{Connection, Dialer, FullResponse};
use super::tls::TlsConfigError;
use super::{Endpoint, ErrorKind, Settings};
use bytes::Bytes;
use std::time::Duration;

/// Why a [`BlockingClient`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BlockingClientError {
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error("starting the client runtime")]
    Runtime(#[source] std::io::Error),
}

/// A synchronous client for one endpoint.
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    dialer: Dialer,
    connection: Option<Connection>,
}

impl BlockingClient {
    /// A client for `endpoint`.
    pub fn new(
        endpoint: Endpoint,
        settings: &Settings,
    ) -> Result<BlockingClient, BlockingClientError> {
        BlockingClient::with_dialer(Dialer::new(endpoint, settings)?)
    }

    /// A client on a dialer already made (its TLS configuration shared).
    pub fn with_dialer(dialer: Dialer) -> Result<BlockingClient, BlockingClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BlockingClientError::Runtime)?;
        Ok(BlockingClient {
            runtime,
            dialer,
            connection: None,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.dialer.endpoint
    }

    /// Sends one request and returns the whole response, within `timeout`.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<FullResponse, ErrorKind> {
        let BlockingClient {
            runtime,
            dialer,
            connection,
        } = self;
        runtime.block_on(async {
            let exchange = async {
                let mut open = match connection.take().filter(Connection::usable) {
                    Some(open) => open,
                    None => dialer.connect().await?,
                };
                let request = dialer.request(
                    open.is_h2(),
                    method,
                    path,
                    headers,
                    Bytes::copy_from_slice(body),
                )?;
                let response = open.fetch(request).await;
                if response.is_ok() {
                    *connection = Some(open);
                }
                response
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| ErrorKind::Timeout)?
        })
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str, timeout: Duration) -> Result<FullResponse, ErrorKind> {
        self.send("GET", path, &[], &[], timeout)
    }
}
