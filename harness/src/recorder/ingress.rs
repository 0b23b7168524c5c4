//! NDJSON over TCP and Unix sockets: one envelope per line in, one reply line out per input
//! line, in order, each written once its event is durable (or refused).
//!
//! A connection's reader parses lines and hands them to the sequencer a chunk at a time
//! (what has arrived without waiting, up to [`CHUNK`]); its writer writes the replies of each
//! chunk in order. At most [`IN_FLIGHT`] chunks of one connection wait for replies, so a
//! sender that does not read its replies stops being read (backpressure, not memory).
//! Lines longer than `max_line_bytes` are refused without being held whole; a line must
//! arrive within the idle timeout of its first byte (slow senders are cut off, others are not
//! held up); connections beyond `max_connections` are refused.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::metrics::Metrics;
use super::protocol::{AckId, Incoming, Reply};
use super::sequencer::{Item, QUARANTINE_KEEP, Submission};

/// Lines handed to the sequencer at once, at most.
pub const CHUNK: usize = 1024;
/// Chunks of one connection waiting for their replies, at most.
pub const IN_FLIGHT: usize = 8;

/// What every input shares.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub tx: mpsc::Sender<Submission>,
    pub metrics: Arc<Metrics>,
    pub max_line_bytes: usize,
    pub idle_timeout: Duration,
    pub connections: Arc<Semaphore>,
}

impl Ingress {
    /// Hands `items` to the sequencer; the receiver gets one reply per item. `None` when the
    /// recorder is stopping.
    pub async fn submit(&self, items: Vec<Item>) -> Option<oneshot::Receiver<Vec<Reply>>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Submission { items, reply }).await.ok()?;
        Some(rx)
    }

    /// A connection slot, taken in accept order (None: at the limit).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.connections.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.metrics.connections_refused.fetch_add(1, Relaxed);
        }
        permit
    }

    /// Serves one connection until it closes, errs or idles out; without a slot, tells the
    /// sender so and closes.
    pub async fn serve<S>(self, stream: S, origin: String, permit: Option<OwnedSemaphorePermit>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(permit) = permit else {
            let mut stream = stream;
            let _ = stream
                .write_all(b"{\"error\":\"too many connections; try again later\"}\n")
                .await;
            let _ = stream.shutdown().await;
            return;
        };
        self.metrics.connections.fetch_add(1, Relaxed);
        let (rd, mut wr) = tokio::io::split(stream);
        let (pending_tx, mut pending_rx) =
            mpsc::channel::<oneshot::Receiver<Vec<Reply>>>(IN_FLIGHT);
        let writer = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(rx) = pending_rx.recv().await {
                let Ok(replies) = rx.await else { break };
                out.clear();
                for r in &replies {
                    serde_json::to_writer(&mut out, r).expect("replies serialize");
                    out.push(b'\n');
                }
                if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        self.read_lines(rd, &origin, pending_tx).await;
        let _ = writer.await;
        self.metrics.connections.fetch_sub(1, Relaxed);
        drop(permit);
    }

    async fn read_lines<R: AsyncRead + Unpin>(
        &self,
        rd: R,
        origin: &str,
        pending: mpsc::Sender<oneshot::Receiver<Vec<Reply>>>,
    ) {
        let mut rd = BufReader::with_capacity(64 << 10, rd);
        let mut line_no = 0u64;
        let mut items = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            // A whole line already buffered is read without arming the idle timer (a timer
            // per line costs more than the read).
            let read = if memchr(rd.buffer()).is_some() {
                Ok(read_line(&mut rd, &mut line, self.max_line_bytes).await)
            } else {
                tokio::time::timeout(
                    self.idle_timeout,
                    read_line(&mut rd, &mut line, self.max_line_bytes),
                )
                .await
            };
            let len = match read {
                Err(_) => {
                    tracing::info!(%origin, "closing an idle connection (no whole line within the idle timeout)");
                    break;
                }
                Ok(Err(_)) | Ok(Ok(None)) => break,
                Ok(Ok(Some(len))) => len,
            };
            line_no += 1;
            if let Some(item) = self.item(&line, len, line_no, origin) {
                items.push(item);
            }
            // More whole lines already here: take them into the same chunk (not a partial
            // one: waiting for its end would hold up the replies of these).
            if items.len() < CHUNK && memchr(rd.buffer()).is_some() {
                continue;
            }
            if items.is_empty() {
                continue;
            }
            let Some(rx) = self.submit(std::mem::take(&mut items)).await else {
                break;
            };
            if pending.send(rx).await.is_err() {
                break;
            }
        }
        if !items.is_empty()
            && let Some(rx) = self.submit(items).await
        {
            let _ = pending.send(rx).await;
        }
    }

    /// One input line as an item (None: a blank line).
    pub fn item(&self, line: &[u8], len: usize, line_no: u64, origin: &str) -> Option<Item> {
        let bad = |id: AckId, error: String| Item::Bad {
            id,
            error,
            origin: format!("{origin} line {line_no}"),
            raw: line[..line.len().min(QUARANTINE_KEEP)].to_vec(),
            len,
        };
        if len > self.max_line_bytes {
            return Some(bad(
                AckId::Line(line_no),
                format!(
                    "line of {len} bytes is longer than the limit of {} (inputs.max_line_bytes)",
                    self.max_line_bytes
                ),
            ));
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            return None;
        }
        Some(match Incoming::parse(text) {
            Ok(inc) => Item::Event {
                id: inc.ack_id(line_no),
                event: Box::new(inc),
            },
            Err(e) => bad(AckId::Line(line_no), e),
        })
    }
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max + 1` bytes of it;
/// returns its full length, or None at the end of the input (a last line without `\n` counts
/// as a line).
async fn read_line<R: AsyncBufReadExt + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    let mut len = 0usize;
    loop {
        let avail = rd.fill_buf().await?;
        if avail.is_empty() {
            return Ok((len > 0).then_some(len));
        }
        let (chunk, done) = match memchr(avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        let room = (max + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        let used = done.unwrap_or(avail.len());
        rd.consume(used);
        if done.is_some() {
            return Ok(Some(len));
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_but_measured_and_the_next_line_is_whole() {
        let data = [vec![b'x'; 5000], b"\nabc\nlast".to_vec()].concat();
        let mut rd = BufReader::with_capacity(64, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut rd, &mut buf, 100).await.unwrap(), Some(5000));
        assert_eq!(buf.len(), 101);
        buf.clear();
        assert_eq!(read_line(&mut rd, &mut buf, 100).await.unwrap(), Some(3));
        assert_eq!(buf, b"abc");
        buf.clear();
        assert_eq!(read_line(&mut rd, &mut buf, 100).await.unwrap(), Some(4));
        buf.clear();
        assert_eq!(read_line(&mut rd, &mut buf, 100).await.unwrap(), None);
    }
}
