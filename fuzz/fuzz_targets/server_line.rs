//! ServerLine parsing on any text: never panics; whatever parses prints back to a line
//! that parses to the same value.
#![no_main]

use chat_proto::ServerLine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(line) = text.parse::<ServerLine>() {
        let printed = line.to_string();
        assert_eq!(printed.parse::<ServerLine>(), Ok(line));
    }
});
