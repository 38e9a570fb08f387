//! `fake-apiserver`: an empty in-memory Kubernetes API server on loopback, for running an operator by hand.
//!
//! In: `--listen ADDRESS` (default `127.0.0.1:0`, a free port) and `--kubeconfig PATH`. Out: the server's URL on
//! stdout, a kubeconfig for it written to PATH, and the server running until killed (or Ctrl-C).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fake_apiserver::{FakeApi, kubeconfig, serve};

/// Serve an empty in-memory Kubernetes API server over plain HTTP.
#[derive(Parser, Debug)]
#[command(name = "fake-apiserver", version, about)]
struct Options {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the server to this file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: failed to listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let url = match listener.local_addr() {
        Ok(address) => format!("http://{address}"),
        Err(error) => {
            eprintln!("error: failed to read the listening address: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &options.kubeconfig {
        if let Err(error) = std::fs::write(path, kubeconfig(&url)) {
            eprintln!("error: failed to write \"{}\": {error}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("kubeconfig written to {} (export KUBECONFIG={})", path.display(), path.display());
    }
    println!("{url}");
    tokio::select! {
        () = serve(FakeApi::new(), listener) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
