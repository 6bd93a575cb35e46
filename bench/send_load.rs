//! Load generator for the send API: `COUNT` messages of about `SIZE` bytes of body, from
//! `CONCURRENCY` concurrent clients over keep-alive connections, to
//! `POST {BASE}/api/v0.1/{USER}/messages`. Prints one JSON line: sent, accepted (202),
//! failed, seconds, msgs/s, and the latency percentiles. Used by `bench/outbound.sh`.
//!
//!     cargo run --release --example send_load -- BASE USER TOKEN COUNT CONCURRENCY SIZE FROM TO_DOMAIN

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 8 {
        eprintln!("usage: send_load BASE USER TOKEN COUNT CONCURRENCY SIZE FROM TO_DOMAIN");
        std::process::exit(2);
    }
    let url = format!(
        "{}/api/v0.1/{}/messages",
        args[0].trim_end_matches('/'),
        args[1]
    );
    let token = args[2].clone();
    let count: usize = args[3].parse().expect("COUNT is a number");
    let concurrency: usize = args[4].parse().expect("CONCURRENCY is a number");
    let size: usize = args[5].parse().expect("SIZE is a number");
    let from = args[6].clone();
    let to_domain = args[7].clone();
    let body = "x".repeat(size.saturating_sub(2)) + "\r\n";

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, next, accepted) = (
            client.clone(),
            url.clone(),
            token.clone(),
            next.clone(),
            accepted.clone(),
        );
        let (from, to_domain, body) = (from.clone(), to_domain.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return latencies;
                }
                let message = serde_json::json!({
                    "from": from,
                    "to": format!("user{n}@{to_domain}"),
                    "subject": format!("load {n}"),
                    "plain": body,
                });
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&message)
                    .send()
                    .await;
                if let Ok(response) = result {
                    if response.status().as_u16() == 202 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = response.bytes().await;
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("a worker finishes"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "sent": count,
            "accepted": accepted,
            "failed": count - accepted,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "msgs_per_sec": (accepted as f64 / seconds).round(),
            "p50_ms": (pct(0.50) * 10.0).round() / 10.0,
            "p99_ms": (pct(0.99) * 10.0).round() / 10.0,
        })
    );
}
