//! TLS on both listeners with the development certificate: a WebSocket client and a gRPC client that
//! trust only that certificate send `getelement` and get their reply, `/health` answers over TLS, plain
//! text is refused, and the certificate is generated once (key file owner-only) and reused.

mod support;

use std::sync::Arc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_config(cert_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn https_get(port: u16, cert_pem: &[u8], path: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(client_config(cert_pem, &[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake with the dev certificate");
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response).await;
    response
}

#[tokio::test]
async fn dev_tls_serves_websocket_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.dev_tls = true;
    let server = start_server(config.clone()).await;

    let cert_path = dir.path().join("dev-tls/cert.pem");
    let key_path = dir.path().join("dev-tls/key.pem");
    let cert_pem = std::fs::read(&cert_path).expect("the development certificate is written");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the development key is owner-only");

    // WebSocket over TLS.
    let connector = tokio_tungstenite::Connector::Rustls(client_config(&cert_pem, &[]));
    let url = format!("wss://localhost:{}/ws/v2", server.http_addr().port());
    let mut ws = WsClient::connect(&url, Some(connector)).await;
    ws.send(&bare("getelement", "1")).await;
    assert_eq!(ws.reply_to("1").await.command, "getelement");

    // gRPC over TLS.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", server.grpc_addr().port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS connects");
    let mut grpc = GrpcClient::open(channel).await;
    grpc.send(bare("getelement", "2")).await;
    assert_eq!(grpc.reply_to("2").await.command, "getelement");

    // Plain HTTP routes over TLS, and `/config` names the wss URL.
    let health = https_get(server.http_addr().port(), &cert_pem, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let client_config_doc = https_get(server.http_addr().port(), &cert_pem, "/config").await;
    assert!(client_config_doc.contains("wss://"), "{client_config_doc}");

    // Plain text gets no HTTP answer from a TLS listener.
    let plain = reqwest::get(format!("http://127.0.0.1:{}/health", server.http_addr().port())).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    server.stop().await.unwrap();

    // A restart reuses the certificate.
    let server = start_server(config).await;
    assert_eq!(std::fs::read(&cert_path).unwrap(), cert_pem, "the development certificate is reused");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn configured_certificate_files_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tls_cert_file = dir.path().join("missing.pem").display().to_string();
    config.tls_key_file = dir.path().join("missing-key.pem").display().to_string();
    let err = flowkeep_server::start(config.clone()).await.err().expect("a missing file refuses to start");
    assert!(format!("{err:#}").contains("tls_cert_file"), "{err:#}");

    std::fs::write(dir.path().join("missing.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("missing-key.pem"), "not a key").unwrap();
    let err = flowkeep_server::start(config).await.err().expect("a bad file refuses to start");
    assert!(format!("{err:#}").contains("tls_cert_file"), "{err:#}");
}
