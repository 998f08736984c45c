//! A minimal Arrow Flight service behind grpc-auth's `TokenExchange`: `Handshake` (the
//! login, answered with the bearer in the initial response headers) and `DoAction`
//! (answers "<subject> via <scheme>"); every other method is UNIMPLEMENTED. Shared by
//! tests/flight_handshake.rs and tests/interop_flight.rs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use grpc_auth::authn::token_exchange::{SignedTokens, TokenExchange, TokenKeys};
use grpc_auth::authn::{AuthRequest, AuthResult, BasicAuthenticator};
use grpc_auth::{AuthLayer, Authenticator, Principal};
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::{Request, Response, Status, Streaming};

pub(crate) const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";
pub(crate) const SECRET: &[u8] = b"flight-token-secret-0123456789abcdef";

type Answer<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Handshake and DoAction; the rest is UNIMPLEMENTED.
#[derive(Debug, Default)]
pub(crate) struct Flight;

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not part of this test server"))
}

#[tonic::async_trait]
impl FlightService for Flight {
    type HandshakeStream = Answer<HandshakeResponse>;
    type ListFlightsStream = Answer<FlightInfo>;
    type DoGetStream = Answer<FlightData>;
    type DoPutStream = Answer<PutResult>;
    type DoExchangeStream = Answer<FlightData>;
    type DoActionStream = Answer<arrow_flight::Result>;
    type ListActionsStream = Answer<ActionType>;

    /// The login itself happened in the auth layer; the handshake has nothing to add.
    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }

    async fn do_action(
        &self,
        req: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let who = req
            .extensions()
            .get::<Principal>()
            .map(|p| format!("{} via {}", p.subject(), p.scheme()))
            .unwrap_or_else(|| "nobody".into());
        let body = format!("{}: {who}", req.get_ref().r#type);
        let result = arrow_flight::Result {
            body: body.into_bytes().into(),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(result)]))))
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented()
    }
    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented()
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented()
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented()
    }
    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        unimplemented()
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented()
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented()
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unimplemented()
    }
}

/// Counts Basic verifications.
struct Counted(BasicAuthenticator, Arc<AtomicUsize>);

impl Authenticator for Counted {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let result = self.0.authenticate(req).await;
        if !matches!(result, Ok(None)) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

/// A running server: its address and how many Basic verifications it made.
pub(crate) struct FlightServer {
    pub(crate) addr: SocketAddr,
    pub(crate) logins: Arc<AtomicUsize>,
}

/// Serves [`Flight`] over TLS on 127.0.0.1:0 behind `AuthLayer(TokenExchange)`, logins
/// only on Handshake, for the user grace:hopper.
pub(crate) async fn spawn(cert_pem: &str, key_pem: &str) -> FlightServer {
    let logins = Arc::new(AtomicUsize::new(0));
    let basic = Counted(
        BasicAuthenticator::new().user("grace", "hopper"),
        logins.clone(),
    );
    let tokens = SignedTokens::new(
        TokenKeys::hs256("k1", SECRET).expect("token key"),
        "arrow.flight.protocol.FlightService",
    );
    let layer = AuthLayer::new(TokenExchange::new(basic, tokens).login_method(HANDSHAKE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .expect("tls config")
        .layer(layer)
        .add_service(FlightServiceServer::new(Flight));
    tokio::spawn(async move {
        if let Err(e) = server
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
        {
            eprintln!("flight server failed: {e}");
        }
    });
    FlightServer { addr, logins }
}
