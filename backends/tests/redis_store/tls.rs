//! `rediss://` against a server with TLS on (feature `redis-tls`), its certificate made by
//! the `openssl` tool for the test.

use std::path::Path;
use std::process::Command;

use cacher_store::redis::{RedisOptions, RedisStore};
use cacher_store::Store;

use crate::server::{self, Server};
use crate::unique_prefix;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[test]
fn rediss_urls_connect_over_tls_and_a_wrong_ca_is_refused() {
    if !server::available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let path = |f: &str| certs.path().join(f).to_str().unwrap().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let (server, tls_port) = loop {
        let plain = server::free_port_pair();
        let tls = server::free_port_pair();
        let tls_s = tls.to_string();
        let args = [
            "--tls-port",
            &tls_s,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        if let Some(s) = Server::start_on_port(plain, &args) {
            break (s, tls);
        }
    };
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let ca_pem = std::fs::read(&ca).unwrap();
    let options = RedisOptions::new(unique_prefix("tls")).with_tls_root_cert(ca_pem);
    let store = RedisStore::open_with(&url, &options).unwrap();
    store.put(b"k", b"over tls").unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"over tls".to_vec()));
    // The system trust store does not know the test CA.
    assert!(RedisStore::open(&url, "untrusted").is_err());
    drop(server);
}
