//! Issue 9: a zstd frame decoding past the limit was refused only after its output had been
//! decoded (4.1 GiB RSS for the 4 GiB limit). Now a bomb is refused with its output counted,
//! not stored: peak RSS is measured (`VmHWM`) in a fresh child process, with a 64 MiB limit
//! and a 1 GiB frame so the test stays cheap.

use std::process::Command;

use cacher_formats::{Codec, Zstd};

const LIMIT: u64 = 64 << 20;
const MIB: u64 = 1 << 20;

/// A frame of RLE blocks (RFC 8878 3.1.1.2) decoding to `len` zero bytes, 4 bytes per
/// 128 KiB, optionally claiming a content size.
fn rle_frame(len: u64, claimed: Option<u64>) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd];
    match claimed {
        None => frame.push(0x00),    // no content size, not single-segment
        Some(_) => frame.push(0xc0), // 8-byte content size
    }
    frame.push(0x38); // window: 2^17 = 128 KiB
    if let Some(size) = claimed {
        frame.extend_from_slice(&size.to_le_bytes());
    }
    let block = 128 * 1024u64;
    let mut left = len;
    while left > 0 {
        let size = left.min(block);
        left -= size;
        let header = (size << 3) | (1 << 1) | u64::from(left == 0);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

/// `VmRSS` or `VmHWM` of this process, in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Runs `scenario` in a fresh process and returns its peak RSS growth in bytes.
fn peak_growth_in_child(scenario: &str) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CACHER_ZSTD_BOMB_SCENARIO", scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{scenario}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let growth = stdout
        .lines()
        .find_map(|l| l.split("peak growth: ").nth(1))
        .unwrap_or_else(|| panic!("{scenario}: no measurement in {stdout}"));
    growth.trim().parse().unwrap()
}

/// The child side of [`peak_growth_in_child`].
#[test]
#[ignore = "run in a fresh process by the tests below"]
fn child() {
    let scenario = std::env::var("CACHER_ZSTD_BOMB_SCENARIO").unwrap();
    let codec = Zstd::new(3, None).unwrap().with_max_decoded_len(LIMIT);
    let frame = match scenario.as_str() {
        "bomb" => rle_frame(1 << 30, None),
        "bomb-claiming-a-plausible-size" => rle_frame(1 << 30, Some(LIMIT)),
        "within-limit" => rle_frame(48 * MIB, None),
        other => panic!("unknown scenario {other}"),
    };
    let before = status("VmRSS:");
    let mut out = Vec::new();
    let result = codec.decompress(&frame, &mut out);
    let peak = status("VmHWM:");
    match scenario.as_str() {
        "within-limit" => assert_eq!(result.map(|()| out.len()).unwrap(), 48 << 20),
        _ => {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("limit") || err.contains("too small"), "{err}");
        }
    }
    println!("peak growth: {}", peak.saturating_sub(before));
}

#[test]
fn a_frame_decoding_past_the_limit_is_refused_without_storing_its_output() {
    let growth = peak_growth_in_child("bomb");
    println!(
        "1 GiB bomb, 64 MiB limit: peak RSS growth {} KiB",
        growth / 1024
    );
    assert!(growth < 16 * MIB, "peak RSS grew by {growth} bytes");
    let growth = peak_growth_in_child("bomb-claiming-a-plausible-size");
    println!(
        "1 GiB bomb claiming 64 MiB: peak RSS growth {} KiB",
        growth / 1024
    );
    assert!(growth < LIMIT + 16 * MIB, "peak RSS grew by {growth} bytes");
}

#[test]
fn a_frame_within_the_limit_decodes_into_exactly_its_size() {
    let growth = peak_growth_in_child("within-limit");
    println!(
        "48 MiB frame without a content size: peak RSS growth {} KiB",
        growth / 1024
    );
    assert!(
        growth < 48 * MIB + 16 * MIB,
        "peak RSS grew by {growth} bytes"
    );
}

#[test]
fn a_frame_claiming_more_than_the_limit_is_refused_up_front() {
    let codec = Zstd::new(3, None).unwrap().with_max_decoded_len(LIMIT);
    let mut out = Vec::new();
    let err = codec
        .decompress(&rle_frame(2 * LIMIT, Some(2 * LIMIT)), &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("claims"), "{err}");
    assert_eq!(codec.max_decoded_len(), LIMIT);
    assert_eq!(
        Zstd::new(3, None).unwrap().max_decoded_len(),
        Zstd::MAX_DECODED_LEN
    );
}
