//! The quick path to a canonical body (`vellum_event::Canonical::parse`) against the full
//! parse, on arbitrary bytes: whenever the quick path accepts an input, the full parse must
//! accept it and make the identical canonical body. (When the quick path declines, the full
//! parse is what answers, so there is nothing to compare.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_event::Limits;
use vellum_event::canonical::differential::disagreement;

fuzz_target!(|data: &[u8]| {
    if let Some(how) = disagreement(data, &Limits::default()) {
        panic!("{how}");
    }
});
