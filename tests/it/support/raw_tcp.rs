//! Raw TCP for the tests that speak below SMTP and HTTP clients: a connection from a chosen
//! loopback address (each 127.x.y.z is another client to the server), and everything the
//! server writes until it closes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// A raw connection from the loopback address `from` to the listener at `to`.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Everything the server writes until it closes (bounded, so a held connection fails).
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut text = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut text))
        .await
        .expect("the server closes the connection in time")
        .unwrap();
    String::from_utf8_lossy(&text).into_owned()
}
