//! Reads every page of a query, following cursors: shared by the index's unit tests
//! (`src/tests.rs`, small partitions) and its integration tests (`tests/query.rs`).

use vellum_event::{Filter, StoredEvent};
use vellum_store::LogReader;

use super::super::Index;

/// The indexes of every event the query answers, page after page, checking each page's
/// bounds and that cursors only move forward.
pub fn all_pages(
    index: &Index,
    reader: &LogReader,
    filter: &Filter,
    limit: usize,
    budget: u64,
) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor = 0;
    for _ in 0..100_000 {
        let page = index.query(reader, filter, cursor, limit, budget).unwrap();
        assert!(page.events.len() <= limit);
        assert!(page.examined <= budget);
        out.extend(
            page.events
                .iter()
                .map(|b| StoredEvent::index_of(b).unwrap()),
        );
        match page.next {
            Some(n) => {
                assert!(n >= cursor, "cursors move forward");
                cursor = n;
            }
            None => return out,
        }
    }
    panic!("paging did not finish");
}
