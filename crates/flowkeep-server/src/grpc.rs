//! The OpenIAP gRPC transport: `openiap.FlowService/SetupStream`, a bidirectional stream of `Envelope`s.
//!
//! The response stream is returned at once (the official client waits for the response headers before
//! it sends anything); inbound envelopes are handed to the connection handler and its envelopes become
//! the response stream. The 45 unary RPCs of the service are answered `UNIMPLEMENTED`: OpenIAP clients
//! only use `SetupStream`.
//!
//! Limits: tonic decodes messages up to the hard cap (twice `max_message_bytes`; the protocol answers
//! `error` to envelopes between the two); a larger message fails the stream. Envelopes towards the
//! client are kept to 4 MiB by the protocol (the official client's decoding limit).

use flowkeep_protocol::{wire, ConnectionInfo, Inbound};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use openiap_proto::openiap::flow_service_server::{FlowService, FlowServiceServer};
use prost::Message as _;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::transport::{ConnectionHandler, Shutdown, TransportLimits, GRPC_CLIENT_MAX_BYTES};

/// What the unary RPCs answer.
pub const USE_SETUP_STREAM: &str = "use SetupStream";

/// The `FlowService` implementation, handing each `SetupStream` to a connection handler.
pub struct GrpcService<H> {
    handler: Arc<H>,
    shutdown: Shutdown,
}

impl<H: ConnectionHandler> GrpcService<H> {
    /// The tonic service with its size limits: decoding up to the hard cap, encoding up to the hard
    /// cap too (a backstop only: the protocol already keeps replies to gRPC clients within 4 MiB).
    pub fn server(handler: Arc<H>, limits: TransportLimits, shutdown: Shutdown) -> FlowServiceServer<Self> {
        FlowServiceServer::new(GrpcService { handler, shutdown })
            .max_decoding_message_size(limits.hard_cap_bytes)
            .max_encoding_message_size(limits.hard_cap_bytes)
    }

    fn open_stream(
        &self,
        request: Request<Streaming<wire::Envelope>>,
    ) -> BoxStream<'static, Result<wire::Envelope, Status>> {
        let info = ConnectionInfo {
            transport: "grpc",
            remote: request.remote_addr(),
            max_outbound_bytes: GRPC_CLIENT_MAX_BYTES,
        };
        let capacity = self.handler.channel_capacity();
        let (outbound_tx, outbound_rx) = mpsc::channel(capacity);
        let inbound = inbound(request.into_inner(), self.shutdown.clone());
        tokio::spawn(self.handler.clone().serve(info, inbound, outbound_tx));
        tokio_stream::wrappers::ReceiverStream::new(outbound_rx).map(Ok).boxed()
    }
}

/// The client's envelopes as [`Inbound`] items. A stream error (a message over the hard cap, an
/// undecodable message, a reset) is reported once as malformed and ends the stream; shutdown ends it too,
/// so the session drains its replies and the response stream completes.
fn inbound(stream: Streaming<wire::Envelope>, shutdown: Shutdown) -> BoxStream<'static, Inbound> {
    stream
        .scan(false, |failed, item| {
            if *failed {
                return std::future::ready(None);
            }
            let item = match item {
                Ok(envelope) => {
                    let size = envelope.encoded_len();
                    Inbound::Envelope { envelope, size }
                }
                Err(status) => {
                    *failed = true;
                    tracing::debug!(error = %status, "gRPC stream failed");
                    Inbound::Malformed(format!("the stream failed: {}", status.message()))
                }
            };
            std::future::ready(Some(item))
        })
        .take_until(shutdown.wait())
        .boxed()
}

macro_rules! flow_service {
    ($($method:ident($request:ident) -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl<H: ConnectionHandler> FlowService for GrpcService<H> {
            type SetupStreamStream = BoxStream<'static, Result<wire::Envelope, Status>>;

            async fn setup_stream(
                &self,
                request: Request<Streaming<wire::Envelope>>,
            ) -> Result<Response<Self::SetupStreamStream>, Status> {
                Ok(Response::new(self.open_stream(request)))
            }

            $(
                async fn $method(
                    &self,
                    _request: Request<wire::$request>,
                ) -> Result<Response<wire::$response>, Status> {
                    Err(Status::unimplemented(USE_SETUP_STREAM))
                }
            )*
        }
    };
}

flow_service! {
    signin(SigninRequest) -> SigninResponse;
    download(DownloadRequest) -> DownloadResponse;
    upload(UploadRequest) -> UploadResponse;
    custom_command(CustomCommandRequest) -> CustomCommandResponse;
    list_collections(ListCollectionsRequest) -> ListCollectionsResponse;
    drop_collection(DropCollectionRequest) -> DropCollectionResponse;
    create_collection(CreateCollectionRequest) -> CreateCollectionResponse;
    query(QueryRequest) -> QueryResponse;
    get_document_version(GetDocumentVersionRequest) -> GetDocumentVersionResponse;
    aggregate(AggregateRequest) -> AggregateResponse;
    count(CountRequest) -> CountResponse;
    insert_one(InsertOneRequest) -> InsertOneResponse;
    insert_many(InsertManyRequest) -> InsertManyResponse;
    update_one(UpdateOneRequest) -> UpdateOneResponse;
    update_document(UpdateDocumentRequest) -> UpdateDocumentResponse;
    insert_or_update_one(InsertOrUpdateOneRequest) -> InsertOrUpdateOneResponse;
    insert_or_update_many(InsertOrUpdateManyRequest) -> InsertOrUpdateManyResponse;
    delete_one(DeleteOneRequest) -> DeleteOneResponse;
    delete_many(DeleteManyRequest) -> DeleteManyResponse;
    register_queue(RegisterQueueRequest) -> RegisterQueueResponse;
    register_exchange(RegisterExchangeRequest) -> RegisterExchangeResponse;
    queue_message(QueueMessageRequest) -> QueueMessageResponse;
    un_register_queue(UnRegisterQueueRequest) -> UnRegisterQueueResponse;
    watch(WatchRequest) -> WatchResponse;
    un_watch(UnWatchRequest) -> UnWatchResponse;
    push_workitem(PushWorkitemRequest) -> PushWorkitemResponse;
    push_workitems(PushWorkitemsRequest) -> PushWorkitemsResponse;
    update_workitem(UpdateWorkitemRequest) -> UpdateWorkitemResponse;
    pop_workitem(PopWorkitemRequest) -> PopWorkitemResponse;
    delete_workitem(DeleteWorkitemRequest) -> DeleteWorkitemResponse;
    add_work_item_queue(AddWorkItemQueueRequest) -> AddWorkItemQueueResponse;
    update_work_item_queue(UpdateWorkItemQueueRequest) -> UpdateWorkItemQueueResponse;
    delete_work_item_queue(DeleteWorkItemQueueRequest) -> DeleteWorkItemQueueResponse;
    ensure_customer(EnsureCustomerRequest) -> EnsureCustomerResponse;
    invoke_open_rpa(InvokeOpenRpaRequest) -> InvokeOpenRpaResponse;
    start_agent(StartAgentRequest) -> StartAgentResponse;
    stop_agent(StopAgentRequest) -> StopAgentResponse;
    get_agent_log(GetAgentLogRequest) -> GetAgentLogResponse;
    get_agent_pods(GetAgentPodsRequest) -> GetAgentPodsResponse;
    delete_agent_pod(DeleteAgentPodRequest) -> DeleteAgentPodResponse;
    delete_agent(DeleteAgentRequest) -> DeleteAgentResponse;
    create_index(CreateIndexRequest) -> CreateIndexResponse;
    get_indexes(GetIndexesRequest) -> GetIndexesResponse;
    drop_index(DropIndexRequest) -> DropIndexResponse;
    delete_package(DeletePackageRequest) -> DeletePackageResponse;
}
