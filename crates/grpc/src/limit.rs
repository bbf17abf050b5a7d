//! At most so many gRPC connections at once. Each accepted connection holds a permit for as long
//! as it is open; one over the cap is closed at once (the clients see the node as unavailable and
//! retry), so a flood of idle connections cannot run the process out of file descriptors or
//! memory. Subscriptions live on connections, so this also bounds the live tails served.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A connection that holds one of the endpoint's permits until it is dropped.
pub struct Capped {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connections `listener` accepts, each holding a permit of `cap`; a connection arriving
/// when none is left is closed without an answer and not yielded. A failed accept (out of file
/// descriptors, say) waits a moment rather than spinning.
pub fn capped(
    listener: TcpListener,
    cap: Arc<Semaphore>,
) -> impl Stream<Item = io::Result<Capped>> {
    futures::stream::unfold((listener, cap), |(listener, cap)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => match cap.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let conn = Capped {
                            inner: stream,
                            _permit: permit,
                        };
                        return Some((Ok(conn), (listener, cap)));
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "too many gRPC connections; closing this one");
                        drop(stream);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    /// Reads until the peer closes (true) or `bytes` arrive back (false).
    async fn closed(conn: &mut TcpStream, bytes: usize) -> bool {
        let mut buf = vec![0u8; bytes];
        match conn.read_exact(&mut buf).await {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
        }
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_is_closed_and_a_freed_permit_admits_the_next() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cap = Arc::new(Semaphore::new(2));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Capped>();
        // Echoes a byte on every connection it is handed, and keeps it open until told.
        tokio::spawn(async move {
            let mut incoming = std::pin::pin!(capped(listener, cap));
            while let Some(conn) = incoming.next().await {
                tx.send(conn.unwrap()).unwrap();
            }
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut held = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        for conn in held.iter_mut() {
            conn.write_all(b"!").await.unwrap();
        }
        assert!(!closed(&mut first, 1).await);
        assert!(!closed(&mut second, 1).await);
        // A third, past the cap: closed by the server, never handed on.
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert!(closed(&mut third, 1).await);
        assert!(rx.try_recv().is_err());
        // One closes: its permit admits the next.
        drop(held.remove(0));
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let mut admitted = rx.recv().await.unwrap();
        admitted.write_all(b"!").await.unwrap();
        assert!(!closed(&mut fourth, 1).await);
    }
}
