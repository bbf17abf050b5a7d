//! The `Streams` service: reads and subscriptions (`read.rs`); every write refused.
//!
//! Funnel's log is written only through its commands (the HTTP API and the `funnel` command line),
//! which the domain decides on: every event in it is a typed, versioned contract that the read
//! models, sagas and exports decode. An event appended from outside would bypass those decisions,
//! so `Append`, `BatchAppend`, `Delete` and `Tombstone` are all refused with access denied, for
//! domain streams and for any other name alike (no free-form category: see ARCHITECTURE.md).

use crate::auth::caller;
use crate::convert::access_denied;
use crate::filter::EventFilter;
use crate::proto::event_store::client::streams::read_req::Options;
use crate::proto::event_store::client::streams::read_req::options::{
    self as opts, all_options::AllOption, stream_options::RevisionOption,
};
use crate::proto::event_store::client::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
    TombstoneReq, TombstoneResp, append_req, streams_server::Streams,
};
use crate::read::{self, From, Item, Request, Target};
use funnel_app::Reads;
use std::pin::Pin;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// How long a writer has to send the first message of an append before it is answered anyway.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct StreamsService {
    reads: Reads,
}

impl StreamsService {
    pub fn new(reads: Reads) -> Self {
        Self { reads }
    }
}

type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// The refusal of every write, naming the stream when the request did.
fn refused(stream: Option<&[u8]>) -> tonic::Status {
    let name = stream
        .map(|s| format!(" `{}`", String::from_utf8_lossy(s)))
        .unwrap_or_default();
    access_denied(&format!(
        "Funnel's log is written only through its commands (the HTTP API or the `funnel` command \
         line), which decide and record each fact; writing to stream{name} over this endpoint is \
         refused / Funnel 的事件日志只能通过其命令（HTTP API 或 funnel 命令行）写入，\
         此接口不接受对流{name}的写入"
    ))
}

fn parse(options: Options) -> Result<Request, tonic::Status> {
    let backwards = options.read_direction() == opts::ReadDirection::Backwards;
    let (target, from) = match options.stream_option {
        Some(opts::StreamOption::Stream(s)) => {
            let name = s
                .stream_identifier
                .map(|i| String::from_utf8_lossy(&i.stream_name).into_owned())
                .ok_or_else(|| tonic::Status::invalid_argument("the stream name is missing"))?;
            let from = match s.revision_option {
                Some(RevisionOption::Revision(r)) => From::At(r),
                Some(RevisionOption::End(_)) => From::End,
                Some(RevisionOption::Start(_)) | None => From::Start,
            };
            (Target::Stream(name), from)
        }
        Some(opts::StreamOption::All(a)) => {
            let from = match a.all_option {
                Some(AllOption::Position(p)) => From::At(p.commit_position),
                Some(AllOption::End(_)) => From::End,
                Some(AllOption::Start(_)) | None => From::Start,
            };
            (Target::All, from)
        }
        None => {
            return Err(tonic::Status::invalid_argument(
                "say which stream to read, or $all",
            ));
        }
    };
    let count = match options.count_option {
        Some(opts::CountOption::Count(c)) => Some(c),
        Some(opts::CountOption::Subscription(_)) => None,
        None => {
            return Err(tonic::Status::invalid_argument(
                "give a count or ask for a subscription",
            ));
        }
    };
    let filter = match options.filter_option {
        Some(opts::FilterOption::Filter(f)) => {
            if matches!(target, Target::Stream(_)) {
                return Err(tonic::Status::invalid_argument(
                    "filters apply to $all only",
                ));
            }
            Some(EventFilter::from_options(&f)?)
        }
        _ => None,
    };
    if count.is_none() && backwards {
        return Err(tonic::Status::invalid_argument(
            "a subscription reads forwards",
        ));
    }
    Ok(Request {
        target,
        from,
        backwards,
        count,
        filter,
    })
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReceiverStream<Item>;

    async fn read(
        &self,
        request: tonic::Request<ReadReq>,
    ) -> Result<tonic::Response<Self::ReadStream>, tonic::Status> {
        let caller = caller(&self.reads, request.metadata()).await?;
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| tonic::Status::invalid_argument("the read options are missing"))?;
        let request = parse(options)?;
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        tokio::spawn(read::run(self.reads.clone(), caller, request, tx));
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }

    async fn append(
        &self,
        request: tonic::Request<tonic::Streaming<AppendReq>>,
    ) -> Result<tonic::Response<AppendResp>, tonic::Status> {
        caller(&self.reads, request.metadata()).await?;
        let mut messages = request.into_inner();
        let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, messages.message()).await;
        let stream = match first {
            Ok(Ok(Some(AppendReq {
                content: Some(append_req::Content::Options(o)),
            }))) => o.stream_identifier.map(|s| s.stream_name),
            _ => None,
        };
        Err(refused(stream.as_deref()))
    }

    async fn delete(
        &self,
        request: tonic::Request<DeleteReq>,
    ) -> Result<tonic::Response<DeleteResp>, tonic::Status> {
        caller(&self.reads, request.metadata()).await?;
        let stream = request
            .into_inner()
            .options
            .and_then(|o| o.stream_identifier)
            .map(|s| s.stream_name);
        Err(refused(stream.as_deref()))
    }

    async fn tombstone(
        &self,
        request: tonic::Request<TombstoneReq>,
    ) -> Result<tonic::Response<TombstoneResp>, tonic::Status> {
        caller(&self.reads, request.metadata()).await?;
        let stream = request
            .into_inner()
            .options
            .and_then(|o| o.stream_identifier)
            .map(|s| s.stream_name);
        Err(refused(stream.as_deref()))
    }

    type BatchAppendStream = BoxStream<BatchAppendResp>;

    async fn batch_append(
        &self,
        request: tonic::Request<tonic::Streaming<BatchAppendReq>>,
    ) -> Result<tonic::Response<Self::BatchAppendStream>, tonic::Status> {
        caller(&self.reads, request.metadata()).await?;
        let mut messages = request.into_inner();
        let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, messages.message()).await;
        let stream = match first {
            Ok(Ok(Some(m))) => m
                .options
                .and_then(|o| o.stream_identifier)
                .map(|s| s.stream_name),
            _ => None,
        };
        Err(refused(stream.as_deref()))
    }
}
