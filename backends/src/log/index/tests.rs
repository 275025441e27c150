use super::*;

fn loc(n: u64) -> Loc {
    Loc {
        value_off: 1000 + n,
        value_len: n,
        layout: if n.is_multiple_of(3) {
            Layout::V1
        } else {
            Layout::V2
        },
    }
}

#[test]
fn index_finds_exact_keys_through_growth_overwrites_and_removals() {
    let mut index = Index::new();
    let mut model = std::collections::HashMap::new();
    for i in 0..20_000u64 {
        // Keys that are prefixes of each other, of many lengths, including empty.
        let key = i.to_string().repeat((i % 7) as usize);
        let old = index.insert(key.as_bytes(), loc(i));
        assert_eq!(old, model.insert(key.clone(), loc(i)), "insert {key:?}");
        if i % 3 == 0 {
            let gone = (i / 2).to_string().repeat(((i / 2) % 7) as usize);
            assert_eq!(index.remove(gone.as_bytes()), model.remove(&gone));
        }
    }
    assert_eq!(index.len(), model.len());
    for (k, l) in &model {
        assert_eq!(index.get(k.as_bytes()), Some(*l), "{k:?}");
    }
    assert_eq!(index.get(b"not a key"), None);
    let mut listed: Vec<Vec<u8>> = index.keys().map(<[u8]>::to_vec).collect();
    listed.sort();
    let mut expected: Vec<Vec<u8>> = model.keys().map(|k| k.as_bytes().to_vec()).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn removing_most_keys_repacks_the_arena_and_keeps_the_rest() {
    let mut index = Index::new();
    let key = |i: u32| format!("{i:0>64}").into_bytes();
    for i in 0..40_000 {
        index.insert(&key(i), loc(i as u64));
    }
    let before = index.keys.bytes();
    for i in 0..39_000 {
        assert!(index.remove(&key(i)).is_some());
    }
    assert!(
        index.keys.bytes() < before / 4,
        "the arena was not repacked"
    );
    for i in 39_000..40_000 {
        assert_eq!(index.get(&key(i)), Some(loc(i as u64)));
    }
    assert_eq!(index.get(&key(5)), None);
}

/// The image [`Index::image`] writes: per shard, its table and its key chunks.
type Image = Vec<(Vec<Slot>, Vec<Vec<u8>>)>;

fn image_of(index: &Index) -> Image {
    let mut image = Vec::new();
    index
        .image(|shard| {
            let mut at = 0;
            let chunks = shard
                .chunk_lens
                .iter()
                .map(|&n| {
                    at += n as usize;
                    shard.keys[at - n as usize..at].to_vec()
                })
                .collect();
            assert_eq!(at, shard.keys.len());
            image.push((shard.slots.to_vec(), chunks));
            Ok(())
        })
        .unwrap();
    image
}

/// Reads an image back as a checkpoint does.
fn read_back(seed: u64, image: Image) -> Option<(Index, u64)> {
    let mut reader = ImageReader::new(seed);
    for (slots, chunks) in image {
        for c in chunks {
            reader.chunk(c);
        }
        if !reader.table(slots) {
            return None;
        }
    }
    reader.finish()
}

fn sample_index() -> (Index, std::collections::HashMap<Vec<u8>, Loc>) {
    let mut index = Index::new();
    let mut model = std::collections::HashMap::new();
    for i in 0..5_000u64 {
        let key = format!("k{i}").repeat((i % 5) as usize).into_bytes();
        index.insert(&key, loc(i));
        model.insert(key, loc(i));
        if i % 4 == 0 {
            let gone = format!("k{}", i / 3)
                .repeat(((i / 3) % 5) as usize)
                .into_bytes();
            index.remove(&gone);
            model.remove(&gone);
        }
    }
    (index, model)
}

#[test]
fn an_image_reads_back_to_the_same_index_with_no_inserts() {
    let (index, model) = sample_index();
    let (back, live_bytes) = read_back(index.seed(), image_of(&index)).unwrap();
    assert_eq!(back.len(), model.len());
    let live: u64 = model.iter().map(|(k, l)| l.record_len(k.len())).sum();
    assert_eq!(live_bytes, live);
    // The value bytes a limited cache reads as the store's total, kept by the inserts and
    // removals of `sample_index` and summed again by the read back.
    let values: u64 = model.values().map(|l| l.value_len).sum();
    assert_eq!(index.value_bytes(), values);
    assert_eq!(back.value_bytes(), values);
    for (k, l) in &model {
        assert_eq!(back.get(k), Some(*l), "{k:?}");
    }
    assert_eq!(back.get(b"absent"), None);
    // Laid out at a load of 2/3 whatever the index went through.
    let slots: usize = back.shards.iter().map(|t| t.slots.len()).sum();
    assert!(
        slots * 2 <= model.len() * 3 + 8 * SHARDS * 2,
        "{slots} slots"
    );
    // And it goes on working as an index: inserts grow it, removals shift runs back.
    let mut back = back;
    for i in 0..3_000u64 {
        let key = format!("new{i}").into_bytes();
        assert_eq!(back.insert(&key, loc(i)), None);
        if i % 2 == 0 {
            assert_eq!(back.remove(&key), Some(loc(i)));
        }
    }
    for (k, l) in &model {
        assert_eq!(back.get(k), Some(*l), "{k:?}");
    }
    assert_eq!(back.len(), model.len() + 1_500);
}

/// The first shard with a full slot that has an empty slot right after it: (shard, slot).
fn full_before_empty(image: &Image) -> (usize, usize) {
    for (t, (slots, _)) in image.iter().enumerate() {
        for i in 0..slots.len().saturating_sub(1) {
            if !slots[i].is_empty() && slots[i + 1].is_empty() {
                return (t, i);
            }
        }
    }
    unreachable!("a table at 2/3 load has one")
}

#[test]
fn an_image_that_does_not_hold_is_refused() {
    let (index, _) = sample_index();
    let image = image_of(&index);
    let seed = index.seed();
    let refused = |image: Image, seed: u64| read_back(seed, image).is_none();
    assert!(!refused(image.clone(), seed));
    // Another seed: the keys hash elsewhere.
    assert!(refused(image.clone(), seed ^ 1));
    // Keys that lie outside the chunks, or chunks with bytes no key uses.
    let mut short = image.clone();
    let last = short.iter_mut().rev().find(|(_, c)| !c.is_empty()).unwrap();
    last.1.last_mut().unwrap().pop();
    assert!(refused(short, seed));
    let mut extra = image.clone();
    extra[0].1.push(b"no key's bytes".to_vec());
    assert!(refused(extra, seed));
    // A key listed twice: a copy of a slot just past its run.
    let (t, i) = full_before_empty(&image);
    let mut twice = image.clone();
    twice[t].0[i + 1] = twice[t].0[i];
    assert!(refused(twice, seed));
    // A slot moved off its key's run (past an empty slot): a lookup would miss it.
    let mut moved = image.clone();
    let to = moved[t].0.iter().rposition(Slot::is_empty).unwrap();
    if to > i + 1 {
        moved[t].0[to] = moved[t].0[i];
        moved[t].0[i] = Slot::EMPTY;
        assert!(refused(moved, seed));
    }
    // A table loaded past 4/5: its slots squeezed into a shorter table (a probe might
    // then find no empty slot).
    let mut full = image.clone();
    let taken: Vec<Slot> = full[t]
        .0
        .iter()
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    let mut squeezed = Table::from_slots(vec![Slot::EMPTY; taken.len()]);
    for s in taken {
        let mut j = squeezed.home(s.hash());
        while !squeezed.slots[j].is_empty() {
            j = squeezed.next(j);
        }
        squeezed.slots[j] = s;
    }
    full[t].0 = squeezed.slots;
    assert!(refused(full, seed));
    // A shard's table given as another's, or a table missing.
    let mut swapped = image.clone();
    let (a, b) = (swapped[t].0.clone(), swapped[(t + 1) % SHARDS].0.clone());
    swapped[t].0 = b;
    swapped[(t + 1) % SHARDS].0 = a;
    assert!(refused(swapped, seed));
    let mut fewer = image;
    fewer.pop();
    assert!(refused(fewer, seed));
}
