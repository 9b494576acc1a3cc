//! Unit tests of the packet cache, the sequence unwrapper and the subscriber's sequence map.

use super::*;

#[test]
fn sequence_numbers_extend_across_wrap_around_and_late_packets_keep_their_cycle() {
    let mut u = SeqUnwrapper::default();
    let first = u.unwrap(65_534);
    assert_eq!(u.unwrap(65_535), first + 1);
    assert_eq!(u.unwrap(0), first + 2, "the wrap continues the count");
    assert_eq!(u.unwrap(1), first + 3);
    assert_eq!(
        u.unwrap(65_535),
        first + 1,
        "a late packet from before the wrap"
    );
    assert_eq!(u.unwrap(2), first + 4);
    // A loss burst of 30 000 packets is still forward.
    assert_eq!(u.unwrap(30_002), first + 30_004);
    // A packet from just before the first one seen stays positive.
    let mut u = SeqUnwrapper::default();
    let first = u.unwrap(3);
    assert_eq!(u.unwrap(65_530), first - 9);
}

/// A recognizable packet for sequence number `seq`.
fn packet(seq: u64) -> Vec<u8> {
    let len = 20 + (seq % 50) as usize;
    (0..len)
        .map(|i| (seq as u8).wrapping_add(i as u8))
        .collect()
}

#[test]
fn the_cache_answers_the_last_capacity_packets_byte_identical_across_a_wrap() {
    let mut cache = PacketCache::new(100);
    assert_eq!(cache.capacity(), 128);
    let mut u = SeqUnwrapper::default();
    let mut last = 0;
    // 1000 packets whose 16-bit numbers wrap in the middle; every 7th is lost.
    for i in 0..1000u32 {
        let seq = (65_000 + i) as u16;
        let ext = u.unwrap(seq);
        last = ext;
        if i % 7 != 3 {
            cache.insert(ext, &packet(ext));
        }
    }
    for back in 0..128 {
        let ext = last - back;
        match cache.get(ext) {
            Some(bytes) => assert_eq!(bytes, packet(ext).as_slice(), "packet {ext}"),
            None => assert_eq!(
                (ext - (last - 999)) % 7,
                3,
                "only lost packets are missing: {ext}"
            ),
        }
    }
    assert_eq!(cache.get(last - 128), None, "older than the window");
    assert_eq!(cache.get(last + 1), None, "not sent yet");
}

#[test]
fn an_oversized_packet_is_not_kept() {
    let mut cache = PacketCache::new(4);
    cache.insert(5, &[1; 10]);
    cache.insert(9, &[2; MAX_PACKET + 1]);
    assert_eq!(cache.get(9), None);
    assert_eq!(
        cache.get(5),
        None,
        "its slot was emptied, not left with another packet"
    );
    cache.insert(10, &[3; MAX_PACKET]);
    assert_eq!(cache.get(10).map(<[u8]>::len), Some(MAX_PACKET));
}

#[test]
fn a_subscribers_sequence_numbers_map_back_to_the_track_across_a_wrap() {
    let mut map = SeqMap::new(256);
    // The subscriber's numbers are offset from the track's (a munged stream) and wrap.
    let offset = 10_000u64;
    for ext in 100_000..101_000u64 {
        map.record((ext + offset) as u16, ext, ext as u32 * 3000);
    }
    for ext in 100_744..101_000u64 {
        assert_eq!(
            map.lookup((ext + offset) as u16),
            Some((ext, ext as u32 * 3000))
        );
    }
    assert_eq!(
        map.lookup((100_743 + offset) as u16),
        None,
        "older than the map"
    );
    assert_eq!(map.lookup((101_000 + offset) as u16), None, "not sent");
}
