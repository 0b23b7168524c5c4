//! Sockets of the long-running commands: connections of the Binance client and the feed
//! simulator (TCP, with TLS by rustls and ring for `wss://` and `https://`: one path for both
//! protocols, so the client tests use against the simulator is the one that connects to the
//! exchange), one-shot `GET`s, and waiting for a signal to stop.

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result};

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// A parsed `ws://`, `wss://`, `http://` or `https://` URL.
#[derive(Debug, Clone)]
pub struct Url {
    pub uri: Uri,
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Url {
    pub fn parse(s: &str) -> std::result::Result<Url, String> {
        let uri: Uri = s.parse().map_err(|e| format!("bad URL {s:?}: {e}"))?;
        let (tls, default_port) = match uri.scheme_str() {
            Some("ws" | "http") => (false, 80),
            Some("wss" | "https") => (true, 443),
            _ => {
                return Err(format!(
                    "bad URL {s:?}: want ws://, wss://, http:// or https://"
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("bad URL {s:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(default_port);
        Ok(Url {
            tls,
            host,
            port,
            uri,
        })
    }

    /// `host:port` as the `Host` header wants it.
    pub fn authority(&self) -> String {
        self.uri
            .authority()
            .map_or_else(|| self.host.clone(), |a| a.to_string())
    }
}

/// TLS settings of a client: the Mozilla roots (webpki-roots), plus the certificates of
/// `ca_file` (PEM) when given, e.g. a test server's self-signed CA.
pub fn client_tls(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| Error::message(format!("reading {}", path.display()), e.to_string()))?;
        if certs.is_empty() {
            return Err(Error::message(
                format!("reading {}", path.display()),
                "no PEM certificate in it",
            ));
        }
        for c in certs {
            roots.add(c).map_err(|e| {
                Error::message(format!("reading {}", path.display()), e.to_string())
            })?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::message("setting up TLS", e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// TLS settings of a server from a PEM certificate chain and a PEM private key.
pub fn server_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let read = |p: &Path, e: &dyn std::fmt::Display| {
        Error::message(format!("reading {}", p.display()), e.to_string())
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| read(cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, &e))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::message("setting up TLS", e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::message("setting up TLS", e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Opens a connection to `url`'s host, through TLS when the scheme asks for it.
pub async fn connect(url: &Url, tls: &Arc<ClientConfig>) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    tcp.set_nodelay(true)?;
    if !url.tls {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
    Ok(Box::new(stream))
}

/// The most of a response body [`get`] reads (a 5000-level depth snapshot is ~250 KB).
const MAX_BODY: usize = 16 << 20;

/// A response to [`get`].
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

/// `GET url` over a connection of its own.
pub async fn get(url: &Url, tls: &Arc<ClientConfig>) -> std::result::Result<Got, String> {
    request(url, tls, "GET", &[], Vec::new()).await
}

/// What [`client_tls`] makes: the roots a client trusts.
pub type ClientTls = Arc<ClientConfig>;

/// [`request`] from outside any runtime (a runtime of its own for the one call).
pub fn request_blocking(
    url: &Url,
    tls: &Arc<ClientConfig>,
    method: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> std::result::Result<Got, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(request(url, tls, method, headers, body))
}

/// One request over a connection of its own, with `headers` and `body`.
pub async fn request(
    url: &Url,
    tls: &Arc<ClientConfig>,
    method: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> std::result::Result<Got, String> {
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let conn = connect(url, tls)
        .await
        .map_err(|e| format!("connecting to {}: {e}", url.authority()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| format!("HTTP handshake with {}: {e}", url.authority()))?;
    tokio::spawn(connection);
    let path = url.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = hyper::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(hyper::header::HOST, url.authority())
        .header(hyper::header::USER_AGENT, "tapedeck");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{method} {}: {e}", url.uri))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response to {method} {}: {e}", url.uri))?
        .to_bytes();
    Ok(Got {
        status,
        retry_after,
        body: body.to_vec(),
    })
}

/// The runtime of a service's sockets: two worker threads named `name`.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name(name)
        .build()
        .map_err(|e| Error::message(format!("starting {name}"), e.to_string()))
}

/// Serves HTTP/1 on one connection until it closes; WebSocket upgrades allowed. A client has
/// 10 s to send a request's headers (slow senders are cut off).
pub async fn serve_http<I, S, B>(io: I, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        >,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let _ = conn.await;
}

/// An accept error (out of file descriptors, say) is logged and the loop goes on after a
/// pause, rather than spinning or ending the listener.
pub async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Waits for SIGINT or SIGTERM, or until `done()` (checked every 200 ms) says to stop.
pub async fn until_signal(done: impl Fn() -> bool) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig =
        |k| signal(k).map_err(|e| Error::message("installing a signal handler", e.to_string()));
    let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tick.tick() => if done() { return Ok(()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_scheme_host_and_port() {
        let u = Url::parse("wss://stream.binance.com:9443/stream?streams=a/b").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("stream.binance.com", 9443));
        let u = Url::parse("http://127.0.0.1/api/v3/depth").unwrap();
        assert_eq!((u.tls, u.port), (false, 80));
        assert!(Url::parse("ftp://x").unwrap_err().contains("want ws://"));
    }
}
