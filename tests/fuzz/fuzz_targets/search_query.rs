//! `store::Search::parse`, the inbox's search box (`GET /?q=`, `/api/messages?q=`): any text
//! parses or is refused with a reason, never a panic; at most `MAX_TERMS` terms come out, and
//! none is empty text (an empty FTS5 phrase would match everything). The SQL each term
//! becomes is run against a real store by `store::messages` tests with hostile queries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::store::{Search, search::Condition};

fuzz_target!(|query: &str| {
    if let Ok(search) = Search::parse(query) {
        assert!(search.terms.len() <= postern::store::search::MAX_TERMS);
        for term in &search.terms {
            if let Condition::Text(text)
            | Condition::From(text)
            | Condition::To(text)
            | Condition::Subject(text) = &term.condition
            {
                assert!(!text.is_empty(), "an empty text term from {query:?}");
            }
        }
    }
});
