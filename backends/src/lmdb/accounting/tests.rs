use super::*;

#[test]
fn state_and_record_round_trip_and_refuse_newer_versions() {
    let st = State {
        built: true,
        entries: 3,
        bytes: 99,
        next: 7,
        kept: KEEP_LFU,
        building: KEEP_FIFO,
    };
    assert_eq!(State::decode(&st.encode()), Ok(st));
    // Version 1 (no order bits) keeps every order.
    let mut v1 = st.encode()[..STATE_LEN_V1].to_vec();
    v1[8] = 1;
    let read = State::decode(&v1).unwrap();
    assert_eq!((read.kept, read.building, read.next), (KEEP_ALL, 0, 7));
    let mut no_order = st.encode();
    no_order[37] = 0;
    assert!(
        State::decode(&no_order).is_err(),
        "a state keeping no order"
    );
    let mut newer = st.encode();
    newer[8] = 4;
    assert_eq!(
        State::decode(&newer),
        Err(crate::version::Refusal::Newer(4))
    );
    // The undated index is a version-3 bit: a state keeping it says so, and a version-2
    // state claiming it is damage (a version-2 build would not keep it up).
    let undated = State {
        kept: KEEP_LFU | KEEP_UNDATED,
        ..st
    };
    let raw = undated.encode();
    assert_eq!(crate::le::u32_at(&raw, 8), Some(3));
    assert_eq!(State::decode(&raw), Ok(undated));
    assert_eq!(crate::le::u32_at(&st.encode(), 8), Some(2));
    let mut v2_claiming = raw;
    v2_claiming[8] = 2;
    assert!(State::decode(&v2_claiming).is_err());
    assert!(State::decode(&newer[..20]).is_err());
    let rec = Record {
        size: 5,
        written: 1,
        accessed: 9,
        hits: 2,
        expires: Some(1234),
        stored: b"\0key".to_vec(),
    };
    assert_eq!(Record::decode(&rec.encode()), Ok(rec.clone()));
    let mut bad = rec.encode();
    bad[0] = 9;
    assert_eq!(Record::decode(&bad), Err(crate::version::Refusal::Newer(9)));
    assert!(Record::decode(&bad[..4]).is_err());
}

#[test]
fn long_stored_keys_get_a_hashed_id_that_fits_an_index_key() {
    let stored = vec![0u8; 511];
    let id = id_of(&stored);
    assert_eq!(id.len(), 33);
    assert!(tagged(TAG_LFU, &[&be32(1), &be64(2)], &id_of(&[0; 480])).len() <= 511);
}
