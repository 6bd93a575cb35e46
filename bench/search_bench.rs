//! Times the inbox's searches (`store::search`, what `GET /?q=` and `/api/messages?q=` run)
//! on a store made by `fill_store`: each query's first page of 50, the median and the
//! slowest of `RUNS` runs after one warm-up. Prints a table; used by `bench/search.sh`.
//!
//!     cargo run --release --example search_bench -- DATA_DIR

use std::path::Path;
use std::time::{Duration, Instant};

use postern::store::{MessageFilter, Search, Store};

const RUNS: usize = 15;

/// What people type: rare and common words, each operator, negation, short text.
const QUERIES: &[&str] = &[
    "",
    "zeppelin",
    "fox",
    "Question 4242",
    "from:user42",
    "from:d3.example",
    "to:billing",
    "subject:\"Question 99999\"",
    "is:unread",
    "has:attachment",
    "status:rejected",
    "after:2026-11-01 from:user7",
    "-from:d1.example fox",
    "zz",
];

#[tokio::main]
async fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: search_bench DATA_DIR");
        std::process::exit(2);
    };
    let store = Store::open(Path::new(&dir)).expect("the store opens");
    println!(
        "{:<32} {:>7} {:>10} {:>10}",
        "query", "found", "median ms", "max ms"
    );
    for query in QUERIES {
        let filter = MessageFilter {
            limit: 50,
            search: Search::parse(query).expect("the benchmark's queries parse"),
            reader: Some("user:1".into()),
            ..MessageFilter::default()
        };
        let found = store
            .list_inbound(filter.clone())
            .await
            .expect("search")
            .len();
        let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            store.list_inbound(filter.clone()).await.expect("search");
            times.push(started.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<32} {:>7} {:>10.2} {:>10.2}",
            format!("{query:?}"),
            found,
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1])
        );
    }
}
