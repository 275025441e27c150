//! The pickle reader against what CPython writes and loads: protocol 0 text escapes, empty
//! bytes under protocols 0-2, Python 2 strings, dict keys Python considers equal, and
//! references shared through the memo. Needs `python3` on the PATH (standard library only).
#![cfg(feature = "pickle")]

mod python3;

use std::collections::BTreeMap;

use cacher_formats::{Pipeline, Registry};
use serde_bytes::ByteBuf;

fn pickle() -> Pipeline {
    Registry::with_builtins().resolve("pickle").unwrap()
}

/// `python3 -c script` with nothing on stdin.
fn python(script: &str) -> Vec<u8> {
    python3::python(script, b"")
}

#[test]
fn empty_bytes_python_pickled_with_protocols_0_to_2_read_back() {
    // Python writes b'' there as `builtins.bytes()`, which the reader refused before.
    for protocol in 0..=5 {
        let bytes = python(&format!(
            "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps([b'', bytearray(b''), b'\\x00\\xff'], protocol={protocol}))"
        ));
        let value: Vec<ByteBuf> = pickle()
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        assert_eq!(
            value,
            [ByteBuf::new(), ByteBuf::new(), ByteBuf::from(vec![0, 255])],
            "protocol {protocol}"
        );
    }
}

#[test]
fn protocol_0_text_with_backslashes_and_escapes_reads_exactly() {
    let texts = [
        "back\\slash",
        "\\u0041 is not an escape here",
        "line\nbreak\r\0nul\x1a",
        "h\u{e9} \u{2603} \u{1F600}",
        "\\\\u0041",
        "",
    ];
    let literal: Vec<String> = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    let bytes = python(&format!(
        "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps([{}], protocol=0))",
        literal.join(", ")
    ));
    let value: Vec<String> = pickle().decode(&bytes).unwrap();
    assert_eq!(value, texts);
}

#[test]
fn python_2_strings_read_as_cpython_reads_them() {
    // STRING and SHORT_BINSTRING, as Python 2 wrote `str`: CPython 3 decodes them as ASCII.
    let value: Vec<String> = pickle()
        .decode(b"(lp0\nS'a\\'b\\n\\x41'\np1\naU\x03xyzp2\na.")
        .unwrap();
    assert_eq!(value, ["a'b\nA", "xyz"]);
    let err = pickle()
        .decode::<String>(b"U\x02\xc3\xa9.")
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-ASCII"), "{err}");
}

#[test]
fn dict_keys_python_considers_equal_are_one_key_with_the_last_value() {
    // {1: 'a', True: 'b', 1.0: 'c', 2: 'd'} as a hand-written SETITEMS; CPython gives
    // {1: 'c', 2: 'd'}.
    let bytes = b"\x80\x02}(K\x01X\x01\x00\x00\x00a\x88X\x01\x00\x00\x00bG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00cK\x02X\x01\x00\x00\x00du.";
    let script = format!(
        "import pickle\nprint(pickle.loads(bytes.fromhex('{}')))",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert_eq!(python(&script), b"{1: 'c', 2: 'd'}\n");
    let value: Vec<(i64, String)> = pickle()
        .decode::<BTreeMap<i64, String>>(bytes)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(value, [(1, "c".to_owned()), (2, "d".to_owned())]);
}

#[test]
fn a_list_filled_after_it_was_shared_through_the_memo_is_seen_filled_everywhere() {
    // x = []; d = [x, x]; then x.append(1) through memo 0: CPython gives [[1], [1]].
    let bytes = b"\x80\x02](]q\x00h\x00eh\x00K\x01a0.";
    let script = "import pickle\nprint(pickle.loads(b'\\x80\\x02](]q\\x00h\\x00eh\\x00K\\x01a0.'))";
    assert_eq!(python(script), b"[[1], [1]]\n");
    let value: Vec<Vec<i64>> = pickle().decode(bytes).unwrap();
    assert_eq!(value, [[1], [1]]);
}

#[test]
fn unsupported_protocols_and_trailing_bytes_are_refused() {
    let err = pickle()
        .decode::<i64>(b"\x80\x06K\x01.")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported pickle protocol: 6"), "{err}");
    let err = pickle()
        .decode::<i64>(b"\x80\x02K\x01.x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("trailing bytes"), "{err}");
}

#[test]
fn growth_through_a_duplicated_reference_counts_against_the_limits() {
    // L = [] (memo 0); DUP; fill the duplicate (L itself, as in CPython) with 1000 ints;
    // then a list of 20,000 references to L: 20 million values from ~45 KB.
    let mut bomb = b"\x80\x02]q\x002(".to_vec();
    bomb.extend(std::iter::repeat_n(&b"K\x01"[..], 1000).flatten());
    bomb.extend_from_slice(b"e0(");
    bomb.extend(std::iter::repeat_n(&b"h\x00"[..], 20_000).flatten());
    bomb.extend_from_slice(b"l.");
    let err = pickle()
        .decode::<serde_json::Value>(&bomb)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expands to more than"), "{err}");

    // L = []; DUP; append L to the duplicate: L contains itself (CPython builds the cycle).
    let cycle = b"\x80\x02]q\x002h\x00a0.";
    let err = pickle()
        .decode::<serde_json::Value>(cycle)
        .unwrap_err()
        .to_string();
    assert!(err.contains("recursive"), "{err}");
}

#[test]
fn calls_that_copy_or_split_a_shared_value_count_against_the_limits() {
    // A 1 MB str in memo 0, then list(memo[0]) 2,000 times: 2 billion one-character strs.
    let mut bomb = b"\x80\x02X\x00\x00\x10\x00".to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 1 << 20));
    bomb.extend_from_slice(b"q\x000c__builtin__\nlist\nq\x01(");
    bomb.extend(std::iter::repeat_n(&b"h\x01h\x00\x85R"[..], 2000).flatten());
    bomb.extend_from_slice(b"l.");
    let err = pickle()
        .decode::<serde::de::IgnoredAny>(&bomb)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expands to more than"), "{err}");
}
