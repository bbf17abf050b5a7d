//! Typed queries and their typed answers: every report, list and record an interface shows. Each
//! query takes the [`Caller`](crate::auth::Caller) and answers only what they may read; each
//! answer derives `Serialize` and `JsonSchema`, so the HTTP API serves it as it is and documents it
//! with its real schema, and the command line prints it (as JSON, or rendered as text).

pub mod describe;
pub mod leads;
pub mod log;
pub mod org;
pub mod record;
pub mod reports;
pub mod task_detail;
pub mod webhooks;
pub mod work;

use crate::error::AppError;
use crate::reads::Reads;
use funnel_projections::{AsOf, ReadModel};
use funnel_types::Position;

/// Runs `f` on two read models and the position they reflect: the live states (under the read
/// lock, not copied) or, as of a moment, states replayed from the log (within the replay limit).
pub(crate) async fn with_two<A, B, T>(
    reads: &Reads,
    as_of: Option<AsOf>,
    f: impl FnOnce(&A, &B, Position) -> T,
) -> Result<T, AppError>
where
    A: ReadModel + Send + Sync,
    B: ReadModel + Send + Sync,
{
    match as_of {
        None => {
            let r = reads.runner().read().await;
            let (a, b) = (rebuilding::<A>(r.get())?, rebuilding::<B>(r.get())?);
            Ok(f(a, b, r.live_checkpoint()))
        }
        Some(as_of) => {
            // Both models as of the same log head.
            let head = reads.store().head().await?;
            let a = reads.as_of::<A>(as_of, head).await?;
            let b = reads.as_of::<B>(as_of, head).await?;
            Ok(f(&a, &b, replayed_position(as_of, head)))
        }
    }
}

/// [`with_two`] for one read model.
pub(crate) async fn with_one<A, T>(
    reads: &Reads,
    as_of: Option<AsOf>,
    f: impl FnOnce(&A, Position) -> T,
) -> Result<T, AppError>
where
    A: ReadModel + Send + Sync,
{
    match as_of {
        None => reads.with_model(f).await,
        Some(as_of) => {
            let head = reads.store().head().await?;
            let a = reads.as_of::<A>(as_of, head).await?;
            Ok(f(&a, replayed_position(as_of, head)))
        }
    }
}

/// The position a replay reflects: the one asked for (within the log), or the head it read to.
fn replayed_position(as_of: AsOf, head: Position) -> Position {
    match as_of {
        AsOf::Position(p) => p.min(head),
        AsOf::Time(_) => head,
    }
}

fn rebuilding<M: ReadModel>(m: Option<&M>) -> Result<&M, AppError> {
    m.ok_or_else(|| {
        AppError::unavailable(
            format!("the {} read model is being rebuilt", M::NAME),
            format!("读模型 {} 正在重建", M::NAME),
        )
    })
}
